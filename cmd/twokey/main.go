// Command twokey is the one binary of twokey: the server, the CLI and the
// terminal UI. Every command lives in its own file; main only hands over.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(Main(context.Background(), os.Args[1:], Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}, os.Getenv))
}
