// Package data reads, writes and transforms the image data sets of the BBD
// workbench. It knows nothing of TensorFlow: it deals in images stored as
// bytes with their shapes, and converts them to float32 batches on demand.
//
// # Images
//
// [Images] holds N images as uint8 pixels, channels-last and row-major
// (index ((n*H+y)*W+x)*C+c), with optional labels (-1 = unknown) and source
// names. Pixels stay bytes in memory; [Images.AppendFloat32] converts a range
// of images to the exact reference preprocessing of the DeepID BadNets:
// channels-last float32(v)/255.
//
// # Sources
//
//   - Competition HDF5 files (CSAW-HackML-2020): datasets "data" [N,3,H,W]
//     (pixel values 0..255 of any integer or float type, either byte order:
//     HDF5 converts) and "label" [N]. [OpenH5] streams rows with hyperslab
//     selections so memory does not grow with the file; [ReadH5] reads a
//     whole (small) file; [WriteH5] writes the same format atomically.
//   - PNG and JPEG files: [ReadImageFile], [ReadImageDir]. The label is parsed
//     from the file name ("label=<int>" or "target=<int>", see [ParseLabel]).
//   - Fashion-MNIST IDX files: [ReadIDXImages], [ReadIDXLabels],
//     [LoadFashionMNIST], and [ToDeepID] to map 28x28x1 images to the 55x47x3
//     input of the paper's DeepID network.
//   - [Load] picks the right reader for a path (directory, HDF5, image file).
//
// # Randomness
//
// Every random choice takes a uint64 seed and uses a PCG generator
// (math/rand/v2) with this package's own permutation code, so the same seed
// gives the same result on every platform and Go release: [Shuffled],
// [Split], [Poison], [PoisonMulti], [NoiseBlendTrigger].
//
// # Triggers
//
// A [Trigger] is a JSON-serialisable description of a backdoor trigger:
// coloured rectangles ([PatchTrigger], [SunglassesTrigger], [LipstickTrigger],
// [EyebrowsTrigger]), a pattern pasted at a position ([PatternPatchTrigger]),
// or a pattern alpha-blended over the whole image ([BlendTrigger],
// [NoiseBlendTrigger]). [Poison], [PoisonAll] and [PoisonMulti] build poisoned
// training and test sets; [PoisonedView] poisons a training set on the fly,
// batch by batch, without a second copy of it in memory.
//
// # Errors
//
// Functions return errors and never panic on bad input. Errors about an input
// are *[InputError] values that name the input (usually a file path), what was
// expected and what was found; errors.Is matches their Kind against
// [ErrNotHDF5], [ErrFormat], [ErrSize], [ErrValue], [ErrExists],
// [ErrNoImages] and [ErrArgument], and also matches wrapped causes such as
// fs.ErrNotExist.
//
// # Hostile files
//
// Data sets come from third parties: every size a file declares (image
// dimensions in a PNG/JPEG header, IDX dimensions, HDF5 shapes) is checked
// against [MaxImagePixels] and [MaxReadBytes] before anything is allocated
// for it, IDX data is read as it arrives, HDF5 rows are converted a bounded
// chunk at a time, and only hard links of an HDF5 file are followed. The fuzz
// targets of this package's tests exercise these readers.
//
// # HDF5 and concurrency
//
// HDF5 access goes through gonum.org/v1/hdf5 (cgo, libhdf5). The Debian
// library is not thread-safe, so this package serialises its own HDF5 calls
// with a package-level mutex; other packages using HDF5 at the same time
// from other goroutines are not covered by it. An [H5Reader] must not be used
// from several goroutines at once.
package data
