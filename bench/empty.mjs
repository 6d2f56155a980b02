// An ES module with nothing in it: the baseline of the import-time figure. A program written as ES
// modules pays the start of Node's ESM loader for its own first file whatever it imports, so the
// time a package adds is measured over importing this file.
