package defence_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/internal/testzoo"
)

// TestLastLayerRealBadNets runs the data-free last-layer check on the four
// real CSAW BadNets (1283 labels): it flags anonymous_1's target 0,
// anonymous_2's 4 and two of multi-trigger's 1, 5, 8, and no other label;
// on the sunglasses BadNet it flags nothing (its target's index is about
// 2.5: a miss, not a false flag). On the reduced zoo's BadNets (trained from
// scratch) it flags nothing, and nothing on the clean model.
func TestLastLayerRealBadNets(t *testing.T) {
	ll, err := defence.NewLastLayer(defence.LastLayerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		targets []int
		atLeast int
	}{{"anonymous_1", []int{0}, 1}, {"anonymous_2", []int{4}, 1}, {"multi_trigger_multi_target", []int{1, 5, 8}, 2}, {"sunglasses", []int{0}, 0}} {
		r, err := ll.Run(realBadNet(t, c.name))
		if err != nil {
			t.Fatal(err)
		}
		top := r.Ranked()[:5]
		var tops []string
		for _, l := range top {
			lb := r.Labels[l]
			tops = append(tops, fmtLabel(lb))
		}
		t.Logf("%s: layer %s (%d features), threshold %.2f, flagged %v; top 5: %v", c.name, r.Layer, r.Features, r.Threshold, r.Flagged, tops)
		for _, tg := range c.targets {
			t.Logf("  target %d: %s, rank %d", tg, fmtLabel(r.Labels[tg]), slices.Index(r.Ranked(), tg)+1)
		}
		found := 0
		for _, l := range r.Flagged {
			if slices.Contains(c.targets, l) {
				found++
			} else {
				t.Errorf("%s: label %d flagged, not a target (%v)", c.name, l, c.targets)
			}
		}
		if found < c.atLeast {
			t.Errorf("%s: %d of the targets %v flagged, want at least %d: %v", c.name, found, c.targets, c.atLeast, r.Flagged)
		}
		if len(r.Labels) != 1283 || r.Threshold < 4.1 || r.Threshold > 4.12 {
			t.Errorf("%s: %d labels, threshold %.3f (want 1283 labels and z(1 - 0.05/2566) = 4.11)", c.name, len(r.Labels), r.Threshold)
		}
	}
	dir, _ := testzoo.Reduced(t)
	for _, name := range []string{"clean", "sunglasses", "anonymous_1", "anonymous_2", "multi_trigger"} {
		s, err := ll.Scan(context.Background(), zooModel(t, dir, name), nil)
		if err != nil {
			t.Fatal(err)
		}
		best := slices.MaxFunc(s.Labels, func(a, b defence.LabelFinding) int {
			if a.AnomalyIndex < b.AnomalyIndex {
				return -1
			}
			if a.AnomalyIndex > b.AnomalyIndex {
				return 1
			}
			return 0
		})
		t.Logf("zoo %s: flagged %v; largest index %.2f (label %d)", name, s.Flagged, best.AnomalyIndex, best.Label)
		if len(s.Flagged) > 0 {
			t.Errorf("zoo %s: flagged %v (the zoo's BadNets leave no last-layer trace; none expected)", name, s.Flagged)
		}
	}
}

func fmtLabel(l defence.LastLayerLabel) string {
	return fmt.Sprintf("%d (index %.2f: bias %.2f, mean weight %.2f)", l.Label, l.Index, l.BiasIndex, l.MeanIndex)
}
