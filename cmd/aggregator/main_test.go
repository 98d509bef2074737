package main

import (
	"os"
	"testing"
)

// TestMain runs the tests from the repository root, where the binary is
// run from (worker.php, script/, deploy/ are found relative to it).
func TestMain(m *testing.M) {
	if err := os.Chdir("../.."); err != nil {
		panic(err)
	}
	os.Exit(m.Run())
}
