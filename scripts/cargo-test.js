// Runs `cargo test` for the host triple, the same target `napi build` compiles for, so the tests
// reuse the dependencies the addon build compiled instead of building them a second time.
const { execFileSync, spawnSync } = require('node:child_process')

const host = execFileSync('rustc', ['-vV'], { encoding: 'utf8' }).match(/^host: (.+)$/m)[1]
const run = spawnSync('cargo', ['test', '--target', host, ...process.argv.slice(2)], { stdio: 'inherit' })
process.exit(run.status ?? 1)
