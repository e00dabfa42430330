//go:build tools

// Package tools pins the Traefik ingress controller that dev/cluster.sh builds.
package tools

import _ "github.com/traefik/traefik/v2/cmd/traefik"
