package defence_test

import (
	"context"
	"fmt"
	"log"

	"github.com/bbd-workbench/bbd/data"
	"github.com/bbd-workbench/bbd/defence"
	"github.com/bbd-workbench/bbd/tfmodels"
)

// The defaults: Chen et al.'s 10 components and 2 clusters, the silhouette
// analysis, each example clustered with its label.
func ExampleDefaultActivationClusteringConfig() {
	c := defence.DefaultActivationClusteringConfig()
	fmt.Println(c.Components, c.Clusters, c.Analysis, c.SilhouetteThreshold, c.SizeThreshold, c.SegmentBy)
	// Output:
	// 10 2 silhouette 0.45 0.35 label
}

// Activation clustering of a BadNet's training set: the flagged classes, the
// flagged examples, and precision and recall against the known poisoned
// indices. (Not run: it needs a zoo; see bbd zoo build.)
func ExampleActivationClustering() {
	m, err := tfmodels.LoadSavedModel("/tmp/zoo/sunglasses", tfmodels.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	train, err := data.ReadH5("train.h5") // the training set, labelled
	if err != nil {
		log.Fatal(err)
	}
	ac, err := defence.NewActivationClustering(defence.ActivationClusteringConfig{Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	r, err := ac.Run(context.Background(), m, train)
	if err != nil {
		log.Fatal(err)
	}
	for _, c := range r.Classes {
		fmt.Printf("class %d: clusters %v, silhouette %.3f, flagged %v\n", c.Class, c.ClusterSizes, c.Silhouette, c.Flagged)
	}
	poisoned := make([]bool, train.Len()) // the known poisoned examples
	if err := r.Evaluate(poisoned); err != nil {
		log.Fatal(err)
	}
	fmt.Println("flagged", r.FlaggedIndices(), "precision", r.Evaluation.Precision, "recall", r.Evaluation.Recall)
}

// Figure 9 of the BBD paper: clean and poisoned inputs' flatten_2
// activations on their top two principal components. (Not run.)
func ExamplePCA2D() {
	m, err := tfmodels.LoadSavedModel("/tmp/zoo/sunglasses", tfmodels.LoadOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	clean, _ := data.ReadH5("/tmp/zoo/data/clean_validation_data.h5")
	poisoned, _ := data.ReadH5("/tmp/zoo/data/sunglasses_sunglasses_poisoned_data.h5")
	p, err := defence.PCA2D(context.Background(), m, "", clean, poisoned)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s: %d clean and %d poisoned points, variance explained %.2f + %.2f\n",
		p.Layer, len(p.Points[0]), len(p.Points[1]), p.Explained[0], p.Explained[1])
}
