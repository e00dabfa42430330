// Command ferretdb serves FerretDB's SQLite or PostgreSQL handler (MongoDB wire protocol) for
// AuroraChat's local services and tests. It embeds FerretDB as a library, so the
// build needs nothing but the Go module proxy.
package main

import (
	"context"
	"flag"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	listen := flag.String("listen-addr", "127.0.0.1:27018", "TCP address to listen on")
	sqliteURL := flag.String("sqlite-url", "file:data/", "SQLite directory URL (with a trailing slash)")
	postgresqlURL := flag.String("postgresql-url", "", "PostgreSQL URL; when set, the PostgreSQL handler serves instead of SQLite")
	flag.Parse()

	handler := "sqlite"
	if *postgresqlURL != "" {
		handler = "postgresql"
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	f, err := ferretdb.New(&ferretdb.Config{
		Listener:      ferretdb.ListenerConfig{TCP: *listen},
		Logger:        logger,
		Handler:       handler,
		SQLiteURL:     *sqliteURL,
		PostgreSQLURL: *postgresqlURL,
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	f.Run(ctx)
}
