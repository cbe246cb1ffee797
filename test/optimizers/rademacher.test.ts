import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RademacherGenerator } from '../../src/index.js';

describe('RademacherGenerator', () => {
  it('gives only +1 and -1, balanced', () => {
    const z = new RademacherGenerator(7).signs(100_000);
    let plus = 0;
    for (const x of z) {
      assert.ok(x === 1 || x === -1, `entry ${x}`);
      if (x === 1) plus++;
    }
    // Binomial(1e5, 1/2): standard deviation 158; 5 sigma is about 790.
    assert.ok(Math.abs(plus - 50_000) < 800, `${plus} of 100000 are +1`);
    // Each bit position of the 32-bit words is balanced too (no stuck bits).
    for (let bit = 0; bit < 32; bit++) {
      let ones = 0;
      for (let i = bit; i < z.length; i += 32) if (z[i] === 1) ones++;
      const n = Math.ceil((z.length - bit) / 32);
      assert.ok(Math.abs(ones - n / 2) < 5 * Math.sqrt(n / 4), `bit ${bit}: ${ones} of ${n}`);
    }
  });

  it('is different every draw, and neighbouring entries are uncorrelated', () => {
    const g = new RademacherGenerator(1);
    const a = g.signs(1000);
    const b = g.signs(1000);
    let same = 0;
    let lag1 = 0;
    for (let i = 0; i < 1000; i++) {
      if (a[i] === b[i]) same++;
      if (i > 0) lag1 += a[i]! * a[i - 1]!;
    }
    assert.ok(same > 400 && same < 600, `${same} of 1000 equal between two draws`);
    assert.ok(Math.abs(lag1) < 5 * Math.sqrt(999), `lag-1 correlation sum ${lag1}`);
  });

  it('reproduces the same sequence from the same seed, and another from another seed', () => {
    const a = new RademacherGenerator(42);
    const b = new RademacherGenerator(42);
    const c = new RademacherGenerator(43);
    for (let k = 0; k < 5; k++) {
      const x = a.signs(77);
      assert.deepEqual(x, b.signs(77));
      assert.notDeepEqual(x, c.signs(77));
    }
  });

  it('gives sign 32 k + j from bit j of the k-th word of the stream (+1 for a set bit), any length', () => {
    const reference = new RademacherGenerator(11);
    const g = new RademacherGenerator(11);
    for (const n of [1, 31, 32, 33, 63, 64, 65, 200, 4099]) {
      const words = Array.from({ length: Math.ceil(n / 32) }, () => reference.nextUint32());
      const expected = Float32Array.from({ length: n }, (_, i) =>
        (words[i >> 5]! >>> (i & 31)) & 1 ? 1 : -1,
      );
      // Into views that do not start their buffer: at byte 8 (float64 pairs of signs) and at
      // byte 4 (not 8-byte aligned: one float32 at a time); signs() into a fresh array.
      const offset = n % 2 ? 1 : 2;
      const backing = new Float32Array(n + 3).fill(7);
      const view = backing.subarray(offset, offset + n);
      assert.deepEqual(n === 4099 ? g.signs(n) : g.signsInto(view), expected);
      if (n !== 4099) {
        assert.deepEqual(
          [...backing.subarray(0, offset), backing[offset + n]],
          [7, 7, 7].slice(-offset - 1),
        );
      }
    }
    assert.deepEqual(g.state, reference.state);
  });

  it('saves and restores its state exactly', () => {
    const a = new RademacherGenerator(3);
    a.signs(50);
    const saved = a.state;
    const expected = a.signs(200);
    const b = new RademacherGenerator(999);
    b.state = saved;
    assert.deepEqual(b.signs(200), expected);
  });

  it('rejects bad seeds and states', () => {
    assert.throws(() => new RademacherGenerator(-1), /seed/);
    assert.throws(() => new RademacherGenerator(1.5), /seed/);
    assert.throws(() => new RademacherGenerator(2 ** 32), /seed/);
    const g = new RademacherGenerator(0);
    assert.throws(() => (g.state = [0, 0, 0, 0]), /not all zero/);
    assert.throws(() => (g.state = [1, 2, 3] as never), /four/);
  });
});
