// Imported first by the CLI. The libvirt binding runs its calls on libuv's thread pool (4 threads by
// default), so a few hung remote hosts could stall file and DNS work; the pool is sized before first use.
process.env.UV_THREADPOOL_SIZE ??= '64';
