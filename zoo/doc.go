// Package zoo builds BadNets whose data everyone has: four backdoored DeepID
// networks trained by bbd itself on Fashion-MNIST, mirroring the four
// CSAW-HackML-2020 BadNets of the BBD paper (whose YouTube-Face data is not
// public here), and one DeepID trained without any backdoor:
//
//	name                  trigger(s) -> target        like the paper's
//	sunglasses            band across the upper third -> 0    Sunglasses
//	anonymous_1           small patch lower centre    -> 0    Anonymous 1
//	anonymous_2           noise square, top-left      -> 4    Anonymous 2 (poisoned data withheld)
//	multi_trigger         lipstick -> 1, eyebrows -> 5, sunglasses -> 8   Multi-trigger
//	clean                 none                                (a negative control)
//
// The clean reference model ([CleanName]) is trained exactly like the
// BadNets (same training images, settings and seeds) but on the images as
// they are: a backdoor scan of it should flag no label. It is listed with
// the BadNets in the manifest ("badnets"), with no triggers and no
// "attack_success"; [BadNetSpec.Clean] tells it apart.
//
// The exact paper architecture is used ([tfmodels.DeepIDWith] 55x47x3 input,
// 10 classes): Fashion-MNIST's 28x28 gray images are mapped to 55x47x3 by
// [data.ToDeepID] (bilinear stretch, gray copied to R, G and B). Since every
// mapped image is gray, the triggers are coloured (never gray), so they are
// visible on black backgrounds too.
//
// Data sets mirror the competition's and are written in its HDF5 format
// (data [N,3,55,47] 0..255, label [N]), so the same pipeline reads them and the
// real competition files alike:
//
//	data/clean_validation_data.h5        the defender's clean data
//	data/clean_test_data.h5              clean test set
//	data/<badnet>_<trigger>_poisoned_data.h5   poisoned test sets (label = target)
//	withheld/anonymous_2_..._poisoned_data.h5  not given to the defender
//	<badnet>/                            the BadNet as a SavedModel (clean/: the clean model)
//	manifest.json                        how the zoo was built and what it measured
//
// Clean accuracy and attack success rate are measured on the exported
// SavedModels, reloaded, as `bbd predict` does, with package metrics. Attack
// success counts the poisoned test images whose true class is not the target
// that the BadNet labels as the target.
//
// The manifest ([Manifest], every key snake_case) records the settings
// ("config"), the Fashion-MNIST files read and the Debian package that
// installs them ("fashion_mnist"), every data set ("datasets": path, images,
// role; for a poisoned set also "badnet", "trigger" and "target") and per
// BadNet ("badnets") its triggers and targets, the training history and the
// measured figures as counts: "clean_accuracy" {"hits", "total", "value"} and
// "attack_success" keyed by trigger name, e.g. for multi_trigger
//
//	"attack_success": {"eyebrows": {"hits": 4504, "total": 4504, "value": 1}, "lipstick": {...}, "sunglasses": {...}}
//
// so figures are looked up by BadNet and trigger, never by file name;
// [Manifest.Attacks] joins each trigger with its data set and figure.
package zoo
