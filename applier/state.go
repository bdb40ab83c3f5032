package applier

import (
	"fmt"

	"github.com/google/nftables"

	"github.com/nftproxy/nftproxy/rules"
)

// tableState is what one family's table holds in the kernel, as far as the
// applier knows. Chain and element texts are fingerprints: equal text means
// equal kernel object.
type tableState struct {
	exists bool
	// chains maps a chain name to its rendered text; "" when the chain was
	// read from the kernel and its rules are unknown.
	chains map[string]string
	sets   map[string]*setState
}

type setState struct {
	spec    string
	dynamic bool
	// elements maps an element's key text to its full text; nil when the
	// set was read from the kernel and its elements are unknown.
	elements map[string]elemState
}

type elemState struct {
	text string
	elem rules.Element
}

// deferred are objects that the last commit emptied and no longer wants.
type deferred struct {
	chains []string
	sets   []string
}

// readKernel learns which of nftproxy's chains and sets exist, after a
// start or a failed commit. Their contents are not read: a full sync
// rewrites them all, except the dynamic sets that hold affinity state.
func readKernel(conn *nftables.Conn) (map[rules.Family]*tableState, error) {
	tables, err := conn.ListTables()
	if err != nil {
		return nil, fmt.Errorf("listing tables: %w", err)
	}
	out := map[rules.Family]*tableState{}
	for _, f := range []rules.Family{rules.IPv4, rules.IPv6} {
		st := &tableState{chains: map[string]string{}, sets: map[string]*setState{}}
		out[f] = st
		for _, t := range tables {
			if t.Name == rules.TableName && t.Family == tableFamily(f) {
				st.exists = true
			}
		}
		if !st.exists {
			continue
		}
		chains, err := conn.ListChainsOfTableFamily(tableFamily(f))
		if err != nil {
			return nil, fmt.Errorf("listing %s chains: %w", f, err)
		}
		for _, c := range chains {
			if c.Table.Name == rules.TableName {
				st.chains[c.Name] = ""
			}
		}
		sets, err := conn.GetSets(&nftables.Table{Name: rules.TableName, Family: tableFamily(f)})
		if err != nil {
			return nil, fmt.Errorf("listing %s sets: %w", f, err)
		}
		for _, s := range sets {
			st.sets[s.Name] = &setState{spec: kernelSpec(s), dynamic: s.Dynamic}
		}
	}
	return out, nil
}

// desiredSpec and kernelSpec describe a set's definition the same way, so
// that a set whose definition changed is found and recreated.
func desiredSpec(s *rules.Set) string {
	kt, _ := setKeyType(s.Keys)
	return fmt.Sprintf("key=%d/%d map=%t interval=%t dynamic=%t timeout=%s",
		kt.GetNFTMagic(), kt.Bytes, s.IsVerdictMap, s.Interval, s.Dynamic, s.Timeout)
}

func kernelSpec(s *nftables.Set) string {
	timeout := s.Timeout
	if !s.HasTimeout {
		timeout = 0
	}
	return fmt.Sprintf("key=%d/%d map=%t interval=%t dynamic=%t timeout=%s",
		s.KeyType.GetNFTMagic(), s.KeyType.Bytes, s.IsMap, s.Interval, s.Dynamic, timeout)
}

func elementStates(s *rules.Set) map[string]elemState {
	m := make(map[string]elemState, len(s.Elements))
	for _, e := range s.Elements {
		m[keyText(e)] = elemState{text: e.String(), elem: e}
	}
	return m
}

func keyText(e rules.Element) string {
	return rules.Element{Key: e.Key}.String()
}
