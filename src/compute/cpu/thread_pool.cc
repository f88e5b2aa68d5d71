#include "compute/cpu/thread_pool.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <thread>

#include "huginn/engine.h"

#if defined(__linux__)
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define HUGINN_PAUSE() _mm_pause()
#else
#define HUGINN_PAUSE() ((void)0)
#endif

namespace huginn {
namespace {

using Clock = std::chrono::steady_clock;

// Spins until pred() holds or `us` microseconds pass; returns pred().
template <typename Pred>
bool spin_until(Pred pred, int us) {
  if (pred()) return true;
  if (us <= 0) return false;
  const auto deadline = Clock::now() + std::chrono::microseconds(us);
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (pred()) return true;
      HUGINN_PAUSE();
    }
    if (Clock::now() >= deadline) return pred();
  }
}

// Futex wait/wake on a 32-bit atomic (plain system calls: no waiter pool).
void futex_wait(std::atomic<uint32_t>& a, uint32_t expected) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&a), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
#else
  while (a.load() == expected) std::this_thread::yield();
#endif
}

void futex_wake_all(std::atomic<uint32_t>& a) {
#if defined(__linux__)
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(&a), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
#else
  (void)a;
#endif
}

}  // namespace

ThreadPool::ThreadPool(int threads) {
  if (const char* s = std::getenv("HUGINN_SPIN_US")) spin_us_ = std::max(0, std::atoi(s));
  const int n = std::max(1, threads);
  slices_ = std::make_unique<Slice[]>(static_cast<size_t>(n));
  for (int i = 1; i < n; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  stop_.store(true, std::memory_order_release);
  wake_.fetch_add(1, std::memory_order_release);
  futex_wake_all(wake_);
  for (auto& t : workers_) t.join();
}

int64_t ThreadPool::claim(uint64_t gen, int s, bool front) {
  std::atomic<uint64_t>& a = slices_[static_cast<size_t>(s)].ticket;
  uint64_t t = a.load(std::memory_order_acquire);
  for (;;) {
    if ((t >> (2 * kIdxBits)) != gen) return -2;  // a later job: not ours
    const uint64_t f = (t >> kIdxBits) & kIdxMask, b = t & kIdxMask;
    if (f >= b) return -1;
    // front + 1 or back - 1; neither carries into the next field (f < b).
    const uint64_t next = front ? t + (uint64_t{1} << kIdxBits) : t - 1;
    if (a.compare_exchange_weak(t, next, std::memory_order_acquire, std::memory_order_acquire))
      return static_cast<int64_t>(front ? f : b - 1);
  }
}

void ThreadPool::run_chunks(uint64_t gen, int thread_index) {
  const uint64_t g = gen & 0xffff;
  const int T = size();
  // Own slice first, front to back; then the others' from their backs.
  for (int k = 0; k < T; ++k) {
    const int s = (thread_index + k) % T;
    for (;;) {
      const int64_t c = claim(g, s, k == 0);
      if (c == -2) return;
      if (c == -1) break;
      // Chunk c of job g is ours; the job cannot finish (and its fields
      // cannot change) before we report it done, so count_ is read before
      // that: afterwards the caller may be writing the next job's.
      const int64_t b = c * chunk_;
      const uint32_t total = count_;
      (*fn_)(b, std::min(n_, b + chunk_), thread_index);
      const uint32_t d = done_.fetch_add(1, std::memory_order_seq_cst) + 1;
      if (d == total && caller_sleeping_.load(std::memory_order_seq_cst)) futex_wake_all(done_);
    }
  }
}

void ThreadPool::worker_loop(int index) {
  // wake_ was 0 when the pool was built; a thread that starts late must still
  // see the jobs (and the stop) published before it ran.
  uint32_t seen = 0;
  for (;;) {
    if (!spin_until([&] { return wake_.load(std::memory_order_acquire) != seen; }, spin_us_)) {
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      while (wake_.load(std::memory_order_seq_cst) == seen) futex_wait(wake_, seen);
      sleepers_.fetch_sub(1, std::memory_order_seq_cst);
    }
    seen = wake_.load(std::memory_order_acquire);
    if (stop_.load(std::memory_order_acquire)) return;
    run_chunks(job_.load(std::memory_order_acquire), index);
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  chunk = std::max<int64_t>(1, chunk);
  if (workers_.empty() || n <= chunk) {
    fn(0, n, 0);
    return;
  }
  // Keep the chunk count within a ticket's 24 bits.
  while ((n + chunk - 1) / chunk > static_cast<int64_t>(kIdxMask)) chunk *= 2;
  const uint64_t count = static_cast<uint64_t>((n + chunk - 1) / chunk);
  fn_ = &fn;
  n_ = n;
  chunk_ = chunk;
  count_ = static_cast<uint32_t>(count);
  done_.store(0, std::memory_order_relaxed);
  gen_ = (gen_ + 1) & 0xffff;
  // Slices are published with release after the fields above: whoever
  // claims a chunk of this generation sees them.
  const uint64_t T = static_cast<uint64_t>(size());
  for (uint64_t s = 0; s < T; ++s)
    slices_[s].ticket.store(gen_ << (2 * kIdxBits) | (count * s / T) << kIdxBits | count * (s + 1) / T,
                            std::memory_order_release);
  job_.store(gen_, std::memory_order_release);
  wake_.fetch_add(1, std::memory_order_seq_cst);
  if (sleepers_.load(std::memory_order_seq_cst) > 0) futex_wake_all(wake_);
  run_chunks(gen_, 0);
  // Every chunk is claimed; wait for those other threads still run.
  auto finished = [&] { return done_.load(std::memory_order_acquire) == count; };
  if (!spin_until(finished, std::max(spin_us_, 200))) {
    caller_sleeping_.store(true, std::memory_order_seq_cst);
    for (uint32_t d = done_.load(std::memory_order_seq_cst); d != count; d = done_.load(std::memory_order_seq_cst))
      futex_wait(done_, d);
    caller_sleeping_.store(false, std::memory_order_relaxed);
  }
  fn_ = nullptr;
}

int resolve_threads(int requested) {
  return requested > 0 ? requested : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
}

}  // namespace huginn
