package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
)

// variant says which learner mistake, if any, this process reproduces. The
// zero value is the correct program. TASKCLI_BUG picks one at run time.
type variant struct {
	description string

	envBeatsFlag     bool // TASKS_FILE is applied after the flags, so it overrides --file
	configIgnored    bool // the config file is never read
	panicOnCorrupt   bool // a data file that is not JSON makes the program panic
	overwriteCorrupt bool // a data file that is not JSON is taken as empty, and the next save replaces it
	truncatingWrite  bool // saving truncates the data file in place, so a failed write loses the tasks
}

var variants = map[string]variant{
	"precedence":               {description: "TASKS_FILE overrides --file (env applied after the flags)", envBeatsFlag: true},
	"config-ignored":           {description: "the config file is never read", configIgnored: true},
	"panic-on-corrupt":         {description: "a corrupt data file makes the program panic", panicOnCorrupt: true},
	"overwrite-corrupt":        {description: "a corrupt data file is taken as empty and overwritten by the next save", overwriteCorrupt: true},
	"truncate-on-failed-write": {description: "saving rewrites the data file in place (os.WriteFile), so a failed write leaves it truncated", truncatingWrite: true},
}

func currentVariant() (variant, error) {
	name := os.Getenv("TASKCLI_BUG")
	if name == "" {
		return variant{}, nil
	}
	v, ok := variants[name]
	if !ok {
		var names []string
		for n := range variants {
			names = append(names, n)
		}
		sort.Strings(names)
		return variant{}, fmt.Errorf("TASKCLI_BUG=%s: unknown variant; known: %s", name, strings.Join(names, ", "))
	}
	return v, nil
}
