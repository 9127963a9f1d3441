// Package reproduce regenerates the figures and tables of "Bimodel Backdoor
// Defence" (the BBD paper, ../shared/paper/bbd-paper.md) with bbd's
// defences: fine-pruning (Liu, Dolan-Gavitt, Garg, RAID 2018; Figures 1-2,
// Table 1), STRIP (Gao et al., ACSAC 2019; Figure 3, Table 2), Neural
// Cleanse (Wang et al., IEEE S&P 2019; Figure 4, Table 3), the Bimodel
// defence itself (Table 4, equations (3)-(6)) and activation analysis (Chen
// et al. 2018; Figure 9).
//
// A [Runner] runs on a [Source]: a bbd zoo ([ZooSource]: Fashion-MNIST
// BadNets built like the paper's four) or the CSAW-HackML-2020 files the
// paper used ([CompetitionSource]). Each experiment is a method of the
// Runner returning plain results; every unit of work (one BadNet, one
// method) is cached in the output folder by its inputs (settings, file
// sizes and times), so a second run, a notebook showing the same results,
// or a run resumed after an interruption reads what is done. [Table1] ...
// [Table4] and [Figure1] ... [Figure9] draw from the results alone, and
// [Runner.Write] writes them all (PNG and SVG, Markdown, CSV and JSON) with
// one self-contained HTML report, the paper's numbers beside bbd's.
//
// `bbd reproduce --zoo DIR --out DIR` is this package from the command
// line; the notebooks 03-07 call the same experiments one by one.
package reproduce
