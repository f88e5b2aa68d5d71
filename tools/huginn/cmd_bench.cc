// `huginn bench`: prefill and decode speed on a model, in the spirit of
// llama-bench, with the machine's roofline measured in the same run.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "compute/backend.h"
#include "compute/roofline.h"
#include "huginn/engine.h"
#include "huginn/error.h"
#include "huginn/model.h"

namespace huginn::cli {
namespace {

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double peak_rss_gb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) * 1024.0 / 1e9;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// FLOP (2 x multiply-adds) of the weight matmuls for one token at r steps,
// without the LM head (prefill computes logits for the last token only).
double matmul_flops_per_token(const Model& m, int64_t steps) {
  const auto& w = m.weights();
  auto block = [](const BlockWeights& b) {
    return static_cast<double>(b.wqkv.numel() + b.proj.numel() + b.fc.numel() + b.mlp_proj.numel());
  };
  double p = static_cast<double>(w.adapter.numel()) * static_cast<double>(steps);
  for (auto& b : w.prelude) p += block(b);
  for (auto& b : w.coda) p += block(b);
  for (auto& b : w.core) p += block(b) * static_cast<double>(steps);
  return 2.0 * p;
}

double head_flops(const Model& m) { return 2.0 * static_cast<double>(m.weights().lm_head.numel()); }

// Causal attention FLOP of a prompt of S tokens after `past` cached ones, per layer application.
double attention_flops(const ModelConfig& c, int64_t past, int64_t S) {
  double pairs = static_cast<double>(S) * static_cast<double>(past) + static_cast<double>(S) * static_cast<double>(S + 1) / 2.0;
  return 4.0 * pairs * static_cast<double>(c.n_embd);  // QK^T and PV
}

void setup_bench(CLI::App& app) {
  struct Args {
    std::string model, steps = "4,32", batch = "1";
    int threads = 0;
    int64_t prompt = 64, gen = 16;
    int repeat = 5;
    bool roofline = false, no_prefill = false, huge_pages = false;
    uint64_t seed = 1;
  };
  auto a = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("bench", "Measure prefill and decode speed (tokens/s, GB/s, GFLOP/s, roofline shares)");
  cmd->add_option("-m,--model", a->model, "model directory")->required();
  cmd->add_option("--steps", a->steps, "recurrent steps to test, comma-separated")->capture_default_str();
  cmd->add_option("-t,--threads", a->threads, "threads (default: all cores)");
  cmd->add_option("--prompt", a->prompt, "prompt tokens (prefill test)")->capture_default_str();
  cmd->add_option("--gen", a->gen, "decoded tokens per run (decode test)")->capture_default_str();
  cmd->add_option("--batch", a->batch, "sequences decoded together, comma-separated")->capture_default_str();
  cmd->add_option("--repeat", a->repeat, "rounds; each round runs every test once (medians are reported)")->capture_default_str();
  cmd->add_flag("--roofline", a->roofline, "measure read bandwidth and FMA peak in this run and report shares");
  cmd->add_flag("--no-prefill", a->no_prefill, "skip timing the prefill (the prompt still fills the cache)");
  cmd->add_option("--seed", a->seed, "seed for the random prompt")->capture_default_str();
  cmd->add_flag("--hugepages", a->huge_pages, "copy the weights into 2 MiB pages at load (copy time reported separately)");
  cmd->callback([a] {
    auto steps_list = parse_int_list(a->steps, "--steps");
    auto batch_list = parse_int_list(a->batch, "--batch");
    if (a->prompt <= 0) throw Error("--prompt must be positive");
    if (a->gen <= 0) throw Error("--gen must be positive");
    if (a->repeat <= 0) throw Error("--repeat must be positive");
    if (a->threads < 0) throw Error("--threads must be >= 0");

    // The probes run before the model loads so that their 1 GiB buffer does
    // not count in the peak RSS reported for the model.
    const int threads = resolve_threads(a->threads);
    double bw = 0, bw4k = 0, fma = 0, vnni = 0, amx = 0;
    if (a->roofline) {
      bw = measure_read_bandwidth(size_t{1} << 30, threads, true).gb_per_s;
      bw4k = measure_read_bandwidth(size_t{1} << 30, threads, false).gb_per_s;
      fma = measure_fma_peak_gflops(threads);
      vnni = measure_vnni_peak_gops(threads);
      amx = measure_amx_bf16_peak_gflops(threads);
    }
    const double rss_before_model = peak_rss_gb();

    double t0 = now();
    LoadOptions lo;
    lo.huge_pages = a->huge_pages;
    auto model = Model::load(a->model, lo);
    const double load_s = now() - t0 - model->copy_seconds();
    const auto& c = model->config();
    Engine engine(*model, {threads});
    std::printf("model: %s  (%s, %.2f GB of weights, loaded in %.3f s", a->model.c_str(), main_dtype(*model).c_str(),
                static_cast<double>(model->weight_bytes()) / 1e9, load_s);
    if (a->huge_pages) std::printf(" + %.2f s copying into huge pages", model->copy_seconds());
    std::printf(")\n");
    std::printf("backend: %s, %d threads\n", engine.backend().name().c_str(), engine.backend().num_threads());
    if (a->roofline) {
      std::printf("roofline (%d threads, best of 7): read %.1f GB/s on 2 MiB pages, %.1f GB/s on 4 KiB pages; FP32 FMA peak %.1f GFLOP/s (%s)\n",
                  threads, bw, bw4k, fma, fma_probe_isa());
      // The units some prefill GEMMs run on instead; %FMA stays against FP32.
      if (vnni > 0 || amx > 0) {
        std::printf("  other units (best of 9):");
        if (vnni > 0) std::printf(" int8 VNNI %.0f GOP/s (Q8_0/Q4_0 prefill; Q4_SB runs int16 products, half)", vnni);
        if (amx > 0)
          std::printf("%s AMX bf16 %.0f GFLOP/s (BF16 prefill: 3 products per f32 one, so %.0f)", vnni > 0 ? ";" : "",
                      amx, amx / 3);
        std::printf("\n");
      }
      // %BW is against the better of the two page sizes: what the machine can read.
      bw = std::max(bw, bw4k);
    }

    const std::string type = main_dtype(*model);
    std::printf("\n| type | test | steps | batch | t/s | ms/call | GB/s | %%BW | GFLOP/s | %%FMA | CPU%% |\n");
    std::printf("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    size_t kv_bytes = 0;
    std::mt19937 rng(static_cast<uint32_t>(a->seed));
    std::uniform_int_distribution<int32_t> tok(0, static_cast<int32_t>(std::min<int64_t>(c.vocab_size, 65504) - 1));

    // The tests take turns, one repetition of each per round, so that a slow
    // stretch of a shared machine hits every test alike, and batch-N-vs-1
    // ratios can be paired within a round.
    struct Test {
      int64_t batch, r;
      std::vector<double> prefill_s, decode_s, round_decode_s;  // round_*: median call per round
      double cpu_used = 0, wall_used = 0;
    };
    std::vector<Test> tests;
    for (int64_t batch : batch_list)
      for (int64_t r : steps_list) tests.push_back({batch, r, {}, {}, {}});
    for (int rep = 0; rep < a->repeat; ++rep) {
      for (Test& T : tests) {
        const int64_t batch = T.batch, r = T.r;
        std::vector<std::vector<int32_t>> prompts(static_cast<size_t>(batch));
        std::vector<KVCache> caches;
        for (auto& p : prompts)
          for (int64_t i = 0; i < a->prompt; ++i) p.push_back(tok(rng));
        for (int64_t b = 0; b < batch; ++b) caches.emplace_back(c);
        std::vector<SequenceInput> in;
        for (int64_t b = 0; b < batch; ++b) in.push_back({prompts[static_cast<size_t>(b)], &caches[static_cast<size_t>(b)]});
        StateInitializer init(a->seed);
        auto run_call = [&] {
          engine.begin(in);
          engine.init_state(1.0f, init);
          for (int64_t i = 0; i < r; ++i) engine.step();
          engine.decode(false);
        };
        {  // the prompt fills the cache; timed unless --no-prefill
          double c0 = cpu_seconds(), w0 = now();
          run_call();
          double dt = now() - w0;
          if (!a->no_prefill) {
            T.prefill_s.push_back(dt);
            T.cpu_used += cpu_seconds() - c0;
            T.wall_used += dt;
          }
        }
        std::vector<std::vector<int32_t>> next(static_cast<size_t>(batch), std::vector<int32_t>(1));
        std::vector<double> this_round;
        for (int64_t g = 0; g < a->gen; ++g) {
          for (int64_t b = 0; b < batch; ++b) {
            auto l = engine.logits(static_cast<int>(b));
            next[static_cast<size_t>(b)][0] =
                static_cast<int32_t>(std::max_element(l.begin(), l.end()) - l.begin()) % static_cast<int32_t>(c.vocab_size);
            in[static_cast<size_t>(b)].tokens = next[static_cast<size_t>(b)];
          }
          double c0 = cpu_seconds(), w0 = now();
          run_call();
          double dt = now() - w0;
          this_round.push_back(dt);
          T.cpu_used += cpu_seconds() - c0;
          T.wall_used += dt;
        }
        T.decode_s.insert(T.decode_s.end(), this_round.begin(), this_round.end());
        T.round_decode_s.push_back(median(this_round));
        size_t kv = 0;
        for (const auto& cache : caches) kv += cache.bytes();
        kv_bytes = std::max(kv_bytes, kv);
      }
    }
    for (const Test& T : tests) {
      const int64_t batch = T.batch, r = T.r;
      const double cpu_pct = T.wall_used > 0 ? 100.0 * T.cpu_used / (T.wall_used * threads) : 0;
      if (!T.prefill_s.empty()) {
        const double t = median(T.prefill_s);
        const double tokens = static_cast<double>(batch * a->prompt);
        const double layer_apps = static_cast<double>(c.n_layers_in_prelude + c.n_layers_in_coda + c.n_layers_in_recurrent_block * r);
        const double flops = matmul_flops_per_token(*model, r) * tokens + head_flops(*model) * static_cast<double>(batch) +
                             static_cast<double>(batch) * layer_apps * attention_flops(c, 0, a->prompt);
        const double gflops = flops / t / 1e9;
        std::printf("| %s | pp%lld | %lld | %lld | %.2f | %.1f | | | %.1f | %s | %.0f |\n", type.c_str(), static_cast<long long>(a->prompt),
                    static_cast<long long>(r), static_cast<long long>(batch), tokens / t, t * 1e3, gflops,
                    fma > 0 ? (std::to_string(static_cast<int>(100.0 * gflops / fma + 0.5)) + "%").c_str() : "",
                    cpu_pct);
      }
      const double t = median(T.decode_s);
      const double gbs = static_cast<double>(model->weight_bytes_per_token(r)) / t / 1e9;
      const double gflops = (matmul_flops_per_token(*model, r) + head_flops(*model)) * static_cast<double>(batch) / t / 1e9;
      std::printf("| %s | tg%lld | %lld | %lld | %.3f | %.1f | %.1f | %s | %.1f | | %.0f |\n", type.c_str(), static_cast<long long>(a->gen),
                  static_cast<long long>(r), static_cast<long long>(batch), static_cast<double>(batch) / t, t * 1e3, gbs,
                  bw > 0 ? (std::to_string(static_cast<int>(100.0 * gbs / bw + 0.5)) + "%").c_str() : "", gflops, cpu_pct);
    }
    // Batch scaling: tokens/s of batch N over batch 1, paired within each round.
    for (const Test& one : tests) {
      if (one.batch != 1) continue;
      for (const Test& T : tests) {
        if (T.batch == 1 || T.r != one.r) continue;
        std::vector<double> ratios;
        std::string list;
        for (size_t i = 0; i < T.round_decode_s.size(); ++i) {
          ratios.push_back(static_cast<double>(T.batch) * one.round_decode_s[i] / T.round_decode_s[i]);
          char buf[16];
          std::snprintf(buf, sizeof buf, "%s%.2f", i ? " " : "", ratios.back());
          list += buf;
        }
        std::printf("\nbatch %lld vs batch 1 (r=%lld): %.2fx tokens/s (median of %zu rounds: %s)", static_cast<long long>(T.batch),
                    static_cast<long long>(one.r), median(ratios), ratios.size(), list.c_str());
      }
    }
    std::printf("\n");
    // ru_maxrss only grows: when the probes' peak exceeds the model's, the
    // model's own peak is not visible; say so instead of printing the probe's.
    const double rss = peak_rss_gb();
    if (rss > rss_before_model)
      std::printf("\npeak RSS: %.2f GB", rss);
    else
      std::printf("\npeak RSS: <= %.2f GB (the bandwidth probe's buffer set the peak)", rss);
    std::printf(" (weights %.2f GB + largest KV cache %.3f GB)\n", static_cast<double>(model->weight_bytes()) / 1e9,
                static_cast<double>(kv_bytes) / 1e9);
  });
}

HUGINN_COMMAND(setup_bench);

}  // namespace
}  // namespace huginn::cli
