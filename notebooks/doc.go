// Package notebooks holds the project's Jupyter notebooks (GoNB kernel) and the test that
// runs them headless.
//
// Every *.ipynb here is executed by TestNotebooks with
//
//	jupyter nbconvert --to notebook --execute --output-dir notebooks/.executed <notebook>
//
// (the output folder is git-ignored) and then written as a standalone HTML page beside it
// (internal/nbhtml); a notebook passes when no cell fails and it shows at least one PNG
// figure. The notebooks 03-07 reproduce the BBD paper's figures and tables through package
// reproduce (nbutil.Reproduction reads BBD_DATA, BBD_ZOO, BBD_SETTINGS and BBD_REPRO_OUT);
// the test runs them on the reduced test zoo with BBD_SETTINGS=tiny and one BBD_REPRO_OUT
// for the whole run, so each reads what an earlier one computed. `make setup` installs Jupyter and registers the GoNB kernel
// with the cgo environment libtensorflow needs; `make test` runs the notebooks with the
// other tests. Run only them with
//
//	source .deps/env.sh && go test ./notebooks/ -run TestNotebooks -v
//
// The first cell of every notebook points GoNB at this module, wherever it is checked out
// (GoNB sets $GONB_DIR to the kernel's start directory, which Jupyter and nbconvert set to
// the notebook's folder):
//
//	!*rm -f go.work && go work init && go work use . "$(dirname "$(cd "$GONB_DIR" && go env GOMOD)")"
//	%goworkfix
//	%noautoget
//
// %noautoget matters: GoNB otherwise runs `go get` for the cell's imports, which asks the
// module proxy for version lists it refuses for some modules (galeone/tensorflow, GoNB's
// own gonbui); through the workspace the versions pinned in this module's go.mod are used,
// so no `go get github.com/janpfeifer/gonb@...` is needed either. Cells find the shared
// data beside the checkout with nbutil.Shared ($BBD_SHARED overrides it).
//
// Cells stay few and thin: each cell is compiled and linked as a cgo program against
// libtensorflow (seconds per cell). Plotting helpers live in package nbutil.
package notebooks
