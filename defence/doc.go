// Package defence holds bbd's backdoor defences, each built as TensorFlow ops
// added to a model's graph (package tfmodels): masks multiplied into layers,
// overlays added to the input batch, a trainable trigger in front of the
// input, a second network beside the first with a decision on top.
//
// Three kinds of defence, one interface each (after IBM's Adversarial
// Robustness Toolbox, in Go idiom):
//
//   - an [InputDetector] scores inputs at inference time and flags the
//     poisoned ones: STRIP (Gao et al., "STRIP: A Defence Against Trojan
//     Attacks on Deep Neural Networks", ACSAC 2019; optionally scored by
//     how unusual an input's pattern of entropies over the fixed overlays is
//     against clean inputs', [ScoreProfile], with Ledoit and Wolf's shrunk
//     covariance, J. Multivariate Analysis 2004), SCALE-UP (Guo et al., ICLR
//     2023), TeCo (Liu et al., CVPR 2023), the Bimodel decision
//     (Huang et al., "Bimodel Backdoor Defence (BBD)", ../shared/paper;
//     optionally with a confidence gap between the two models, chosen from
//     clean data);
//   - a [Mitigator] returns a repaired model and a report: fine-pruning (Liu,
//     Dolan-Gavitt, Garg, "Fine-Pruning: Defending Against Backdooring Attacks
//     on Deep Neural Networks", RAID 2018; by default fine-tuned on images
//     with random rectangles painted over them, Zhong et al., "Random Erasing
//     Data Augmentation", AAAI 2020; optionally with knowledge distillation
//     from the BadNet, Hinton et al., "Distilling the Knowledge in a Neural
//     Network", 2015), unlearning (Wang et al., "Neural
//     Cleanse: Identifying and Mitigating Backdoor Attacks in Neural
//     Networks", IEEE S&P 2019);
//   - a [Scanner] inspects a model label by label and returns per-label
//     findings: Neural Cleanse's trigger reverse-engineering and its MAD
//     outlier test, and the data-free check of the final dense layer
//     ([LastLayer], after DFBScanner: Yu et al., "Lightweight and Fast
//     Backdoor Model Detection", arXiv 2605.18907), which the Neural Cleanse
//     report carries: its fast budget protects the check's flags and its
//     verdict adds those the reversed triggers confirm.
//
// Every defence takes a Config: a plain struct whose zero fields take
// documented defaults (a Default...Config function returns them filled in),
// with a Validate method that names the bad field. Every random choice takes
// a seed. Long runs take a context (cancel to stop; nothing is left
// half-written) and report progress through a callback.
package defence
