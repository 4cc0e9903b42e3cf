/**
 * Preloaded (`node --expose-gc --import`) into a process the memory bench measures:
 * on the IPC message "sample" it collects garbage and answers with process.memoryUsage().
 * The channel does not keep the process alive.
 */
declare const gc: (() => void) | undefined;

if (process.send !== undefined) {
  process.on('message', (message) => {
    if (message !== 'sample') return;
    if (typeof gc === 'function') {
      gc();
      gc();
    }
    process.send?.(process.memoryUsage());
  });
  // After the listener: adding a 'message' listener refs the channel again.
  process.channel?.unref();
}
