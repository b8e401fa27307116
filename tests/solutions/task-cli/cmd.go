package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/viper"
)

// newRoot builds the command tree. Configuration (the data file's path) comes
// from, highest first: --file, TASKS_FILE, the config file's `file`, the default
// $HOME/.tasks.json.
func newRoot(bug variant) *cobra.Command {
	v := viper.New()
	var st store
	root := &cobra.Command{
		Use:   "task",
		Short: "Keep a to-do list in a local JSON file",
		Args:  wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			return usageErrorf(cmd, "give a command: add, list, complete or delete")
		},
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			// From here on, an error is not a usage error: do not print the usage for it.
			cmd.SilenceUsage = true
			path, err := configure(cmd, v, bug)
			if err != nil {
				return err
			}
			st = store{path: path, bug: bug}
			return nil
		},
	}
	root.PersistentFlags().String("file", "", "data file (default $HOME/.tasks.json; also TASKS_FILE, or file: in the config file)")
	root.PersistentFlags().String("config", "", "config file (default $XDG_CONFIG_HOME/taskcli/config.yaml, i.e. ~/.config/taskcli/config.yaml)")
	root.CompletionOptions.DisableDefaultCmd = true
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })

	add := &cobra.Command{
		Use:   "add TITLE...",
		Short: "Add a task",
		Args:  wrapArgs(cobra.MinimumNArgs(1)),
		RunE: func(cmd *cobra.Command, args []string) error {
			title := strings.TrimSpace(strings.Join(args, " "))
			if title == "" {
				return usageErrorf(cmd, "the title is empty")
			}
			tasks, err := st.load()
			if err != nil {
				return err
			}
			id := 1
			for _, t := range tasks {
				if t.ID >= id {
					id = t.ID + 1
				}
			}
			tasks = append(tasks, Task{ID: id, Title: title})
			if err := st.save(tasks); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "added %d: %s\n", id, title)
			return nil
		},
	}

	var asJSON bool
	list := &cobra.Command{
		Use:   "list",
		Short: "List the tasks",
		Args:  wrapArgs(cobra.NoArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			tasks, err := st.load()
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				b, _ := json.MarshalIndent(tasks, "", "  ")
				fmt.Fprintln(out, string(b))
				return nil
			}
			for _, t := range tasks {
				mark := " "
				if t.Done {
					mark = "x"
				}
				fmt.Fprintf(out, "%3d [%s] %s\n", t.ID, mark, t.Title)
			}
			return nil
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print the tasks as a JSON array, as in the data file")

	byID := func(use, short, verb string, change func([]Task, int) []Task) *cobra.Command {
		return &cobra.Command{
			Use:   use + " ID",
			Short: short,
			Args:  wrapArgs(cobra.ExactArgs(1)),
			RunE: func(cmd *cobra.Command, args []string) error {
				id, err := strconv.Atoi(args[0])
				if err != nil || id < 1 {
					return usageErrorf(cmd, "%q is not a task id (a whole number from 1)", args[0])
				}
				tasks, err := st.load()
				if err != nil {
					return err
				}
				at := -1
				for i, t := range tasks {
					if t.ID == id {
						at = i
					}
				}
				if at < 0 {
					return fmt.Errorf("no task with id %d (task list shows the ids)", id)
				}
				title := tasks[at].Title
				if err := st.save(change(tasks, at)); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "%s %d: %s\n", verb, id, title)
				return nil
			},
		}
	}
	complete := byID("complete", "Mark a task done", "completed", func(ts []Task, i int) []Task { ts[i].Done = true; return ts })
	del := byID("delete", "Delete a task", "deleted", func(ts []Task, i int) []Task { return append(ts[:i], ts[i+1:]...) })

	root.AddCommand(add, list, complete, del)
	return root
}

// configure resolves the data file's path.
func configure(cmd *cobra.Command, v *viper.Viper, bug variant) (string, error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("finding the home folder: %w", err)
	}
	v.SetDefault("file", filepath.Join(home, ".tasks.json"))
	if err := v.BindPFlag("file", cmd.Flags().Lookup("file")); err != nil {
		return "", err
	}
	if err := v.BindEnv("file", "TASKS_FILE"); err != nil {
		return "", err
	}
	cfg, _ := cmd.Flags().GetString("config")
	if !bug.configIgnored {
		if cfg != "" {
			v.SetConfigFile(cfg)
		} else {
			dir, err := os.UserConfigDir()
			if err != nil {
				dir = filepath.Join(home, ".config")
			}
			v.AddConfigPath(filepath.Join(dir, "taskcli"))
			v.SetConfigName("config")
			v.SetConfigType("yaml")
		}
		if err := v.ReadInConfig(); err != nil {
			var missing viper.ConfigFileNotFoundError
			if cfg != "" || !errors.As(err, &missing) {
				return "", fmt.Errorf("reading the config file: %w", err)
			}
		}
	}
	if bug.envBeatsFlag {
		if e := os.Getenv("TASKS_FILE"); e != "" {
			v.Set("file", e)
		}
	}
	path := v.GetString("file")
	if strings.TrimSpace(path) == "" {
		return "", errors.New("the data file's path is empty (check --file, TASKS_FILE and the config file)")
	}
	return path, nil
}

// wrapArgs marks argument-count errors as usage errors.
func wrapArgs(check cobra.PositionalArgs) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := check(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// usageErrorf reports a bad argument found inside RunE, with the usage.
func usageErrorf(cmd *cobra.Command, format string, a ...interface{}) error {
	cmd.SilenceUsage = false
	return usageError{fmt.Errorf(format, a...)}
}

// isCobraUsage tells Cobra's own command-line errors (unknown command) apart.
func isCobraUsage(err error) bool {
	return strings.HasPrefix(err.Error(), "unknown command") || strings.HasPrefix(err.Error(), "unknown flag") || strings.HasPrefix(err.Error(), "unknown shorthand flag")
}
