// Command junitdiff reads the JUnit reports of Kubernetes' e2e runs and
// says how they compare.
//
//	junitdiff -summary REPORT          passed, failed and skipped, and each failure
//	junitdiff -known FILE REPORT       fail on a failure FILE does not list
//	junitdiff BASELINE REPORT          fail on a test that passed in BASELINE
//	                                   and did not pass in REPORT
package main

import (
	"bufio"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"sort"
	"strings"
)

type suites struct {
	Suites []suite `xml:"testsuite"`
}

type suite struct {
	Cases []testCase `xml:"testcase"`
}

type testCase struct {
	Name    string    `xml:"name,attr"`
	Time    float64   `xml:"time,attr"`
	Failure *struct{} `xml:"failure"`
	Error   *struct{} `xml:"error"`
	Skipped *struct{} `xml:"skipped"`
}

// outcome is "passed", "failed" or "skipped".
func (c testCase) outcome() string {
	switch {
	case c.Failure != nil || c.Error != nil:
		return "failed"
	case c.Skipped != nil:
		return "skipped"
	}
	return "passed"
}

// read returns each test's outcome. Ginkgo's synthetic suite nodes
// ([SynchronizedBeforeSuite] and the like) count as tests too: when they
// fail, everything did.
func read(path string) (map[string]testCase, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s suites
	if err := xml.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("parsing %s: %w", path, err)
	}
	out := map[string]testCase{}
	for _, su := range s.Suites {
		for _, c := range su.Cases {
			out[c.Name] = c
		}
	}
	return out, nil
}

func byOutcome(cases map[string]testCase) map[string][]string {
	m := map[string][]string{}
	for name, c := range cases {
		m[c.outcome()] = append(m[c.outcome()], name)
	}
	for _, names := range m {
		sort.Strings(names)
	}
	return m
}

func main() {
	summary := flag.Bool("summary", false, "print passed, failed and skipped, and each failure")
	known := flag.String("known", "", "a file of known failures, one test name per line")
	flag.Parse()
	if err := run(*summary, *known, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "junitdiff:", err)
		os.Exit(1)
	}
}

func run(summary bool, known string, args []string) error {
	switch {
	case summary && len(args) == 1:
		cases, err := read(args[0])
		if err != nil {
			return err
		}
		m := byOutcome(cases)
		fmt.Printf("passed %d, failed %d, skipped %d\n", len(m["passed"]), len(m["failed"]), len(m["skipped"]))
		for _, name := range m["failed"] {
			fmt.Println("  failed:", name)
		}
		return nil
	case known != "" && len(args) == 1:
		cases, err := read(args[0])
		if err != nil {
			return err
		}
		allowed, err := readLines(known)
		if err != nil {
			return err
		}
		var unexpected []string
		for _, name := range byOutcome(cases)["failed"] {
			if !allowed[name] {
				unexpected = append(unexpected, name)
			}
		}
		if len(unexpected) > 0 {
			return fmt.Errorf("%d failures not in %s:\n  %s", len(unexpected), known, strings.Join(unexpected, "\n  "))
		}
		fmt.Println("no failure but the known ones")
		return nil
	case len(args) == 2:
		base, err := read(args[0])
		if err != nil {
			return err
		}
		got, err := read(args[1])
		if err != nil {
			return err
		}
		var lost []string
		for _, name := range byOutcome(base)["passed"] {
			if c, ok := got[name]; !ok || c.outcome() != "passed" {
				lost = append(lost, name)
			}
		}
		if len(lost) > 0 {
			return fmt.Errorf("%d tests pass with %s and not with %s:\n  %s", len(lost), args[0], args[1], strings.Join(lost, "\n  "))
		}
		fmt.Printf("every test that passed in %s passed in %s\n", args[0], args[1])
		return nil
	}
	return fmt.Errorf("usage: junitdiff -summary REPORT | -known FILE REPORT | BASELINE REPORT")
}

// readLines reads a list of test names, one a line; # starts a comment.
func readLines(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		out[line] = true
	}
	return out, sc.Err()
}
