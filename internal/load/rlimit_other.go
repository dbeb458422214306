//go:build !unix

package load

// checkFiles has no limit to read here; the run finds out.
func checkFiles(int) error { return nil }
