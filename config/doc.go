// Package config defines nftproxy's versioned configuration: the
// Configuration type read from the file given with --config, its defaults,
// its validation, and the command-line flags that override the file.
//
// The order of precedence, lowest first, is: the defaults from [Default], the
// configuration file, the flags set explicitly on the command line, and, for
// the node name only, the NODE_NAME environment variable when nothing else
// set it. [Flags.Resolve] applies that order and validates the result.
//
// The operator-facing reference, docs/configuration.md, is generated from the
// doc comments and tags in types.go by `go run ./config/gen`.
package config
