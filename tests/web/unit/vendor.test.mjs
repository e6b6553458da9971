// web/vendor/hash-wasm holds the npm package's own files, at the version package.json pins.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const vendored = resolve(here, '../../../web/vendor/hash-wasm');
const require = createRequire(import.meta.url);
const pkgDir = dirname(require.resolve('hash-wasm/package.json'));

test('vendored hash-wasm is the pinned npm package, byte for byte', () => {
  const pinned = JSON.parse(readFileSync(join(here, '../package.json'), 'utf8')).devDependencies['hash-wasm'];
  assert.equal(JSON.parse(readFileSync(join(pkgDir, 'package.json'), 'utf8')).version, pinned);
  for (const [ours, theirs] of [
    ['sha1.umd.min.js', 'dist/sha1.umd.min.js'],
    ['md5.umd.min.js', 'dist/md5.umd.min.js'],
    ['LICENSE', 'LICENSE'],
  ]) {
    assert.ok(readFileSync(join(vendored, ours)).equals(readFileSync(join(pkgDir, theirs))), `${ours} differs from hash-wasm's ${theirs}`);
  }
});
