// Command task keeps a to-do list in a local JSON file: the task-cli lab's
// reference solution (contract: labs/task-cli/README.md).
package main

import (
	"errors"
	"fmt"
	"os"
)

// usageError marks a bad command line (exit code 2, usage shown).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }

func main() {
	bug, err := currentVariant()
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(2)
	}
	root := newRoot(bug)
	if err := root.Execute(); err != nil {
		// Cobra already printed "Error: ..." (and the usage for a bad command line).
		var u usageError
		if errors.As(err, &u) || isCobraUsage(err) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
