package defence_test

import (
	"fmt"

	"github.com/bbd-workbench/bbd/defence"
)

// STRIP's default score is the mean entropy; the entropy profile is chosen
// with Score, needs a threshold from clean data, and stops no input early.
func ExampleSTRIPConfig_profile() {
	fmt.Println(defence.DefaultSTRIPConfig().Score)
	cfg := defence.STRIPConfig{Score: defence.ScoreProfile, Adaptive: true}
	fmt.Println(cfg.Validate())
	cfg.Adaptive = false
	fmt.Println(cfg.Validate())
	// Output:
	// mean
	// invalid defence configuration: strip Adaptive: expected false with Score "profile" (adaptive STRIP stops on the mean), found true
	// <nil>
}
