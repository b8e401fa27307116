package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Task is one entry of the data file, which holds a JSON array of them.
type Task struct {
	ID    int    `json:"id"`
	Title string `json:"title"`
	Done  bool   `json:"done"`
}

// store reads and writes the data file.
type store struct {
	path string
	bug  variant
}

// load reads every task. A missing file is an empty list; a file that is not
// a JSON array of tasks is an error that names the file, and it is left alone.
func (s store) load() ([]Task, error) {
	b, err := os.ReadFile(s.path)
	if errors.Is(err, fs.ErrNotExist) {
		return []Task{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the data file: %w", err)
	}
	var tasks []Task
	if err := json.Unmarshal(b, &tasks); err != nil {
		switch {
		case s.bug.panicOnCorrupt:
			panic(err)
		case s.bug.overwriteCorrupt:
			return []Task{}, nil
		}
		return nil, fmt.Errorf("data file %s is not a JSON array of tasks (%v); it was left as it is: fix it or move it away", s.path, err)
	}
	if tasks == nil {
		tasks = []Task{}
	}
	return tasks, nil
}

// save writes every task atomically: a temporary file in the same folder,
// synced, then renamed over the data file. A failed write leaves the old file whole.
func (s store) save(tasks []Task) error {
	b, err := json.MarshalIndent(tasks, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if s.bug.truncatingWrite {
		if err := os.WriteFile(s.path, b, 0o644); err != nil {
			return fmt.Errorf("saving the tasks: %w", err)
		}
		return nil
	}
	dir := filepath.Dir(s.path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("saving the tasks: %w", err)
	}
	tmp, err := os.CreateTemp(dir, filepath.Base(s.path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("saving the tasks: %w", err)
	}
	fail := func(err error) error {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("saving the tasks to %s: %w (the data file was not changed)", s.path, err)
	}
	if _, err := tmp.Write(b); err != nil {
		return fail(err)
	}
	if err := tmp.Sync(); err != nil {
		return fail(err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fail(err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("saving the tasks to %s: %w (the data file was not changed)", s.path, err)
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("saving the tasks to %s: %w (the data file was not changed)", s.path, err)
	}
	return nil
}
