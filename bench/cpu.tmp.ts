import { rawVariant, sdkVariant } from './core.ts';
import { standard, wrap } from '../index.ts';
const which = process.argv[2] ?? 'raw';
const make = which === 'sdk' ? sdkVariant : rawVariant;
const n = which === 'sdk' ? 20000 : 100000;
const variants = [['bare', undefined], ['wrap', (t: any) => wrap(t, [])], ['standard', (t: any) => wrap(t, [standard()])]] as const;
const insts = await Promise.all(variants.map(([name, w]) => make(name, w as any).setup()));
for (const inst of insts) for (let i = 0; i < n / 4; i++) await inst.exchange(i);
const best = variants.map(() => Infinity);
for (let r = 0; r < 5; r++) {
  for (const [k, inst] of insts.entries()) {
    const c0 = process.cpuUsage();
    for (let i = 0; i < n; i++) await inst.exchange(i);
    const cpu = process.cpuUsage(c0);
    best[k] = Math.min(best[k]!, (cpu.user + cpu.system) / n);
  }
}
console.log(variants.map(([name], k) => `${name} ${best[k]!.toFixed(2)}µs`).join('  '), ` wrap-bare ${(best[1]! - best[0]!).toFixed(2)}µs standard-bare ${(best[2]! - best[0]!).toFixed(2)}µs`);
for (const inst of insts) await inst.close();
