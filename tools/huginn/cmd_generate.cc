// `huginn generate` and `huginn chat`: text generation with fixed or adaptive
// depth, sampling, stop ids/strings and streaming (docs/GENERATION.md).
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "cli_util.h"
#include "commands.h"
#include "huginn/chat_template.h"
#include "huginn/engine.h"
#include "huginn/error.h"
#include "huginn/generate.h"
#include "huginn/generation_config.h"
#include "huginn/model.h"
#include "huginn/tokenizer.h"

namespace huginn::cli {
namespace {

struct GenArgs {
  std::string model, prompt, ids, system, criterion, cache_strategy;
  int64_t steps = 0, max_new = -1, min_steps = 0, check_every = 1;
  float init_scale = 1.0f, temp = 1.0f, top_p = 1.0f, min_p = 0.0f, repeat_penalty = 1.0f;
  double exit_threshold = 0;
  int top_k = 0, threads = 0;
  uint64_t seed = 0;
  bool greedy = false, continuous = false, json = false, preallocate = false, stats = false, huge_pages = false;
  std::vector<std::string> stops;
};

void add_common_options(CLI::App* cmd, GenArgs& a) {
  cmd->add_option("-m,--model", a.model, "model directory")->required();
  cmd->add_option("--steps", a.steps, "recurrent steps per token (the maximum with --criterion; default: mean_recurrence)");
  cmd->add_option("--init-scale", a.init_scale, "scale of the random initial state (0: zeros)")->capture_default_str();
  cmd->add_option("--seed", a.seed, "seed of the initial-state draws and of sampling")->capture_default_str();
  cmd->add_option("-n,--max-new-tokens", a.max_new,
                  "most tokens to generate (default: generation_config.json's max_new_tokens / max_length, else 256)");
  cmd->add_flag("--greedy", a.greedy, "always pick the most likely token (overrides generation_config.json)");
  cmd->add_option("--temp", a.temp, "sampling temperature (> 0 turns sampling on; 0: greedy)");
  cmd->add_option("--top-k", a.top_k, "keep the k most likely tokens (0: off)");
  cmd->add_option("--top-p", a.top_p, "nucleus sampling: keep the smallest set of mass <= p, in (0, 1]");
  cmd->add_option("--min-p", a.min_p, "drop tokens below min-p times the top probability, in [0, 1]");
  cmd->add_option("--repeat-penalty", a.repeat_penalty, "repetition penalty (> 0; 1: off)");
  cmd->add_option("--criterion", a.criterion,
                  "adaptive compute exit criterion: none, entropy-diff, latent-diff, kl, minp-kl, argmax-stability, cosine");
  cmd->add_option("--exit-threshold", a.exit_threshold, "exit threshold of --criterion (default: the reference's)");
  cmd->add_option("--min-steps", a.min_steps, "adaptive: no exit check before this many steps");
  cmd->add_option("--check-every", a.check_every, "adaptive: check the criterion every K steps");
  cmd->add_option("--cache-strategy", a.cache_strategy,
                  "KV cache lookup/compression, e.g. full, latest-m4, compress-s16, latest-m4-compress-s16 "
                  "(default: full, or latest-m4 with --criterion)");
  cmd->add_flag("--preallocate", a.preallocate, "preallocate the KV cache");
  cmd->add_flag("--continuous", a.continuous, "continuous compute: warm-start each token's recurrence");
  cmd->add_option("--stop", a.stops, "stop string (repeatable)");
  cmd->add_flag("--stats", a.stats, "print tokens, steps per token, speed and cache size to stderr");
  cmd->add_option("-t,--threads", a.threads, "threads (default: all cores)");
  cmd->add_flag("--hugepages", a.huge_pages, "copy the weights into 2 MiB pages at load instead of mapping the file");
}

// Builds the options from generation_config.json and the flags.
GenerateOptions make_options(const GenArgs& a, const CLI::App* cmd, const GenerationConfig& gc) {
  GenerateOptions o = GenerateOptions::from_generation_config(gc);
  if (cmd->count("--steps") && a.steps <= 0) throw Error("--steps must be a positive integer, got " + std::to_string(a.steps));
  o.steps = a.steps;
  if (!(a.init_scale >= 0)) throw Error("--init-scale must be >= 0");
  o.init_scale = a.init_scale;
  o.seed = a.seed;
  o.continuous = a.continuous;
  o.preallocate_cache = a.preallocate;
  const bool sampling_flag = cmd->count("--temp") || cmd->count("--top-k") || cmd->count("--top-p") || cmd->count("--min-p");
  if (a.greedy && sampling_flag) throw Error("--greedy cannot be combined with --temp, --top-k, --top-p or --min-p");
  if (cmd->count("--temp")) {
    if (!(a.temp >= 0)) throw Error("--temp must be >= 0 (0: greedy), got " + std::to_string(a.temp));
    o.sampling.temperature = a.temp;
  }
  if (cmd->count("--top-k")) {
    if (a.top_k < 0) throw Error("--top-k must be >= 0 (0: off), got " + std::to_string(a.top_k));
    o.sampling.top_k = a.top_k;
  } else if (sampling_flag && !gc.sampling.do_sample) {
    o.sampling.top_k = 0;  // sampling asked for on the command line: no hidden top-k 50
  }
  if (cmd->count("--top-p")) {
    if (!(a.top_p > 0 && a.top_p <= 1)) throw Error("--top-p must be in (0, 1], got " + std::to_string(a.top_p));
    o.sampling.top_p = a.top_p;
  }
  if (cmd->count("--min-p")) {
    if (!(a.min_p >= 0 && a.min_p <= 1)) throw Error("--min-p must be in [0, 1], got " + std::to_string(a.min_p));
    o.sampling.min_p = a.min_p;
  }
  if (cmd->count("--repeat-penalty")) {
    if (!(a.repeat_penalty > 0)) throw Error("--repeat-penalty must be > 0, got " + std::to_string(a.repeat_penalty));
    o.sampling.repetition_penalty = a.repeat_penalty;
  }
  if (a.greedy) o.sampling.do_sample = false;
  if (sampling_flag) o.sampling.do_sample = true;
  if (!a.criterion.empty()) {
    AdaptiveOptions ad;
    ad.criterion = parse_criterion(a.criterion);
    if (cmd->count("--exit-threshold")) ad.exit_threshold = a.exit_threshold;
    if (a.min_steps < 0) throw Error("--min-steps must be >= 0, got " + std::to_string(a.min_steps));
    if (a.check_every < 1) throw Error("--check-every must be >= 1, got " + std::to_string(a.check_every));
    ad.min_steps = a.min_steps;
    ad.check_every = a.check_every;
    o.adaptive = ad;
  } else if (cmd->count("--exit-threshold") || cmd->count("--min-steps") || cmd->count("--check-every")) {
    throw Error("--exit-threshold, --min-steps and --check-every need --criterion");
  }
  if (!a.cache_strategy.empty()) o.cache_strategy = a.cache_strategy;
  for (const auto& s : a.stops) o.stop_strings.push_back(s);
  o.validate();
  return o;
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir, bool required, const char* why) {
  const std::string path = dir + "/tokenizer.json";
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    if (required) throw Error("the model directory " + dir + " has no tokenizer.json, which " + why);
    return nullptr;
  }
  return std::make_unique<Tokenizer>(Tokenizer::load(path));
}

// Checked before an Engine exists, so that a bad prompt fails fast.
void check_prompt(const std::vector<int32_t>& prompt, const ModelConfig& c) {
  for (int32_t id : prompt)
    if (id < 0 || id >= c.vocab_size)
      throw Error("token id " + std::to_string(id) + " is outside the vocabulary (size " + std::to_string(c.vocab_size) + ")");
  if (static_cast<int64_t>(prompt.size()) > c.block_size)
    throw Error("the prompt has " + std::to_string(prompt.size()) + " tokens, more than the model's context of " +
                std::to_string(c.block_size));
}

void print_stats(const GenerationResult& r, double seconds) {
  std::fprintf(stderr, "[%zu tokens, %.2f steps/token, %.2f tokens/s, finish %s, KV cache %.2f MiB]\n", r.ids.size(),
               r.mean_steps(), seconds > 0 ? static_cast<double>(r.ids.size()) / seconds : 0.0,
               to_string(r.finish).c_str(), static_cast<double>(r.cache_bytes) / (1024.0 * 1024.0));
}

void setup_generate(CLI::App& app) {
  auto a = std::make_shared<GenArgs>();
  auto* cmd = app.add_subcommand("generate", "Generate text from a prompt (streams the text, or prints JSON with --json)");
  add_common_options(cmd, *a);
  cmd->add_option("--prompt", a->prompt, "prompt text (encoded with the model's tokenizer.json, special tokens added)");
  cmd->add_option("--ids", a->ids, "prompt as comma-separated token ids");
  cmd->add_flag("--json", a->json, "print {\"ids\", \"steps\", \"text\"} instead of streaming");
  cmd->callback([a, cmd] {
    const bool has_prompt = cmd->count("--prompt") > 0, has_ids = cmd->count("--ids") > 0;
    if (has_prompt && has_ids) throw Error("give either --prompt or --ids, not both");
    if (!has_prompt && !has_ids) throw Error("give the prompt with --prompt TEXT or --ids 1,2,3");
    auto gc = GenerationConfig::from_model_dir(a->model);
    GenerateOptions o = make_options(*a, cmd, gc);  // validate flags before loading weights
    auto tok = load_tokenizer(a->model, has_prompt, "--prompt needs (use --ids instead)");
    std::vector<int32_t> prompt;
    if (has_prompt) {
      prompt = tok->encode(a->prompt, /*add_special_tokens=*/true);
      if (prompt.empty()) throw Error("--prompt: the prompt encodes to no tokens");
    } else {
      prompt = parse_ids(a->ids);
    }
    if (!cmd->count("--max-new-tokens")) o.max_new_tokens = gc.resolve_max_new_tokens(static_cast<int64_t>(prompt.size()), 256);
    else if (a->max_new < 0) throw Error("--max-new-tokens must be >= 0");
    else o.max_new_tokens = a->max_new;
    auto m = Model::load(a->model, LoadOptions{false, a->huge_pages});
    check_prompt(prompt, m->config());
    Engine engine(*m, {a->threads});
    StreamCallbacks cb;
    if (!a->json) {
      if (tok) {
        cb.on_text = [](int, std::string_view t) {
          std::fwrite(t.data(), 1, t.size(), stdout);
          std::fflush(stdout);
        };
      } else {
        cb.on_token = [first = true](int, int32_t id, int64_t) mutable {
          std::printf(first ? "%d" : " %d", id);
          first = false;
          std::fflush(stdout);
        };
      }
    }
    const auto t0 = std::chrono::steady_clock::now();
    auto r = generate(engine, prompt, o, tok.get(), cb);
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (a->json) {
      nlohmann::json j;
      j["ids"] = r.ids;
      j["steps"] = r.steps;
      j["text"] = tok ? nlohmann::json(r.text) : nlohmann::json(nullptr);
      j["finish"] = to_string(r.finish);
      j["cache_bytes"] = r.cache_bytes;
      std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
    } else {
      std::printf("\n");
    }
    if (a->stats) print_stats(r, secs);
  });
}

// ---- chat ----

std::atomic<bool> g_interrupt{false};
extern "C" void on_sigint(int) { g_interrupt = true; }

void setup_chat(CLI::App& app) {
  auto a = std::make_shared<GenArgs>();
  auto* cmd = app.add_subcommand("chat",
                                 "Interactive chat with the model's chat template (reads lines from stdin; "
                                 "/reset, /steps N, /quit; Ctrl-C stops a reply)");
  add_common_options(cmd, *a);
  cmd->add_option("--system", a->system, "system message");
  cmd->callback([a, cmd] {
    auto gc = GenerationConfig::from_model_dir(a->model);
    GenerateOptions o = make_options(*a, cmd, gc);
    if (cmd->count("--max-new-tokens")) {
      if (a->max_new < 0) throw Error("--max-new-tokens must be >= 0");
      o.max_new_tokens = a->max_new;
    } else {
      o.max_new_tokens = gc.max_new_tokens.value_or(1024);
    }
    auto tok = load_tokenizer(a->model, true, "chat needs");
    auto tmpl = ChatTemplate::from_model_dir(a->model);
    auto m = Model::load(a->model, LoadOptions{false, a->huge_pages});
    Engine engine(*m, {a->threads});
    o.cancel = &g_interrupt;
    Session session(engine, o, tok.get());

    struct sigaction sa {};
    sa.sa_handler = on_sigint;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGINT, &sa, nullptr);

    const bool tty = isatty(STDIN_FILENO);
    std::vector<ChatMessage> messages;
    if (!a->system.empty()) messages.push_back({"system", a->system});
    const size_t base = messages.size();
    if (tty) std::fprintf(stderr, "huginn chat: /reset, /steps N, /quit; Ctrl-C stops a reply, Ctrl-D exits\n");
    std::string line;
    while (true) {
      if (tty) {
        std::fprintf(stderr, "> ");
        std::fflush(stderr);
      }
      if (!std::getline(std::cin, line)) break;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty()) continue;
      if (line[0] == '/') {
        if (line == "/quit" || line == "/exit") break;
        if (line == "/reset") {
          messages.resize(base);
          session.reset();
          std::fprintf(stderr, "(conversation reset)\n");
          continue;
        }
        if (line.rfind("/steps", 0) == 0) {
          int64_t n = 0;
          try {
            size_t used = 0;
            std::string arg = line.size() > 6 ? line.substr(6) : "";
            n = std::stoll(arg, &used);
            if (arg.find_first_not_of(" \t", used) != std::string::npos) n = 0;
          } catch (const std::exception&) {
            n = 0;
          }
          if (n <= 0) {
            std::fprintf(stderr, "usage: /steps N (a positive integer)\n");
          } else {
            session.options().steps = n;
            std::fprintf(stderr, "(recurrent steps per token: %lld)\n", static_cast<long long>(n));
          }
          continue;
        }
        std::fprintf(stderr, "unknown command %s (commands: /reset, /steps N, /quit)\n", line.c_str());
        continue;
      }
      messages.push_back({"user", line});
      const std::string rendered = tmpl.render(messages, true);
      const auto ids = tok->encode(rendered, /*add_special_tokens=*/false);
      g_interrupt = false;
      StreamCallbacks cb;
      cb.on_text = [](int, std::string_view t) {
        std::fwrite(t.data(), 1, t.size(), stdout);
        std::fflush(stdout);
      };
      const auto t0 = std::chrono::steady_clock::now();
      auto r = session.generate(ids, cb);
      const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("\n");
      std::fflush(stdout);
      if (r.finish == FinishReason::Cancelled) std::fprintf(stderr, "(reply stopped)\n");
      if (r.finish == FinishReason::ContextFull) std::fprintf(stderr, "(context full: /reset to start over)\n");
      if (a->stats) print_stats(r, secs);
      messages.push_back({"Huginn", r.text});
    }
    signal(SIGINT, SIG_DFL);
  });
}

HUGINN_COMMAND(setup_generate);
HUGINN_COMMAND(setup_chat);

}  // namespace
}  // namespace huginn::cli
