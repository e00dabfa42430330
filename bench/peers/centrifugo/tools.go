//go:build tools

// Wrapper module: pins Centrifugo for `./run.sh bench` (built through the Go module proxy).
package tools

import _ "github.com/centrifugal/centrifugo/v6"
