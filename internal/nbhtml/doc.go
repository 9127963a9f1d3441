// Package nbhtml writes executed Jupyter notebooks as standalone HTML pages
// with `jupyter nbconvert --to html` (nbconvert is pinned in the venv by
// `make setup`): every figure a cell displayed is embedded in the page as a
// data: URL, so the page opens anywhere, without Jupyter. The reproduce
// command writes the rendered notebooks next to its report this way.
package nbhtml
