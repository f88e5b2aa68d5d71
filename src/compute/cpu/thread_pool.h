// A persistent pool of worker threads. parallel_for hands out chunks of work
// dynamically, so a thread that the OS deschedules delays only the chunk it
// holds, not a fixed share of the work. Each thread owns a contiguous slice
// of the chunks and takes them front to back; a thread whose slice is empty
// steals from the back of the others'. A matmul's rows are then read as one
// sequential stream per thread, so the hardware prefetcher and the kernels'
// "next rows" prefetch stay ahead across chunk boundaries (with one shared
// ticket, consecutive chunks went to alternating threads and every chunk
// started cold: decode ran 10-25% slower). Completion is counted
// in finished chunks, not in arriving workers: a worker that wakes late (or not
// at all before the caller has done every chunk itself) never delays the call.
// Idle workers spin briefly (cheap wake-up between the many short parallel
// regions of a decode step) and then sleep on a futex.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace huginn {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return static_cast<int>(workers_.size()) + 1; }

  // Calls fn(begin, end, thread_index) over [0, n) in chunks of `chunk`
  // items; the calling thread takes part. Returns when all chunks are done.
  // Not reentrant: fn must not call parallel_for on the same pool.
  void parallel_for(int64_t n, int64_t chunk, const std::function<void(int64_t, int64_t, int)>& fn);

  // How long an idle worker spins before sleeping (microseconds; default 100,
  // or the environment variable HUGINN_SPIN_US).
  void set_spin_us(int us) { spin_us_ = us; }

 private:
  void worker_loop(int index);
  // Claims and runs chunks of job `gen`; returns when none are left.
  void run_chunks(uint64_t gen, int thread_index);

  // Tries to claim a chunk of job `gen` from slice s: its front for the
  // owner, its back for a thief. -1: the slice is empty; -2: job gen is over.
  int64_t claim(uint64_t gen, int s, bool front);

  // A slice's ticket: generation (16 bits) | front (24 bits) | back (24 bits),
  // the chunks [front, back) not yet claimed. One cache line each.
  static constexpr int kIdxBits = 24;
  static constexpr uint64_t kIdxMask = (uint64_t{1} << kIdxBits) - 1;
  struct alignas(64) Slice {
    std::atomic<uint64_t> ticket{0};
  };

  std::vector<std::thread> workers_;
  std::unique_ptr<Slice[]> slices_;  // one per thread
  std::atomic<uint64_t> job_{0};     // generation of the latest job
  std::atomic<uint32_t> wake_{0};     // bumped for each job and at stop (futex word)
  std::atomic<uint32_t> done_{0};     // chunks finished in the current job (futex word)
  std::atomic<int> sleepers_{0};      // workers blocked in wake_.wait
  std::atomic<bool> caller_sleeping_{false};
  std::atomic<bool> stop_{false};
  uint64_t gen_ = 0;
  int spin_us_ = 100;

  // Job description: written before the ticket is published, read by a
  // worker only after it claimed a chunk (so never while being rewritten).
  const std::function<void(int64_t, int64_t, int)>* fn_ = nullptr;
  int64_t n_ = 0, chunk_ = 1;
  uint32_t count_ = 0;  // chunks in the job
};

}  // namespace huginn
