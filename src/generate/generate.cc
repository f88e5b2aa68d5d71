#include "huginn/generate.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include "huginn/error.h"
#include "huginn/tokenizer.h"

namespace huginn {

// ---- criteria ----

ExitCriterion parse_criterion(std::string_view name) {
  if (name == "none") return ExitCriterion::None;
  if (name == "entropy-diff") return ExitCriterion::EntropyDiff;
  if (name == "latent-diff") return ExitCriterion::LatentDiff;
  if (name == "kl") return ExitCriterion::KL;
  if (name == "minp-kl") return ExitCriterion::MinpKL;
  if (name == "argmax-stability") return ExitCriterion::ArgmaxStability;
  if (name == "cosine") return ExitCriterion::Cosine;
  throw Error("unknown exit criterion '" + std::string(name) +
              "' (expected none, entropy-diff, latent-diff, kl, minp-kl, argmax-stability or cosine)");
}

std::string to_string(ExitCriterion c) {
  switch (c) {
    case ExitCriterion::None: return "none";
    case ExitCriterion::EntropyDiff: return "entropy-diff";
    case ExitCriterion::LatentDiff: return "latent-diff";
    case ExitCriterion::KL: return "kl";
    case ExitCriterion::MinpKL: return "minp-kl";
    case ExitCriterion::ArgmaxStability: return "argmax-stability";
    case ExitCriterion::Cosine: return "cosine";
  }
  return "?";
}

double default_exit_threshold(ExitCriterion c) {
  switch (c) {
    case ExitCriterion::None: return 0.0;
    case ExitCriterion::EntropyDiff: return 1e-3;
    case ExitCriterion::LatentDiff: return 0.03;
    case ExitCriterion::KL: return 5e-4;
    case ExitCriterion::MinpKL: return 1e-6;
    case ExitCriterion::ArgmaxStability: return 5;
    case ExitCriterion::Cosine: return 1e-3;
  }
  return 0.0;
}

bool criterion_needs_logits(ExitCriterion c) {
  return c == ExitCriterion::EntropyDiff || c == ExitCriterion::KL || c == ExitCriterion::MinpKL ||
         c == ExitCriterion::ArgmaxStability;
}

ExitEvaluator::ExitEvaluator(ExitCriterion c, double threshold, int64_t vocab_size)
    : c_(c), threshold_(threshold), V_(vocab_size) {}

void ExitEvaluator::init(std::span<const float> initial_state, int64_t n_embd) {
  E_ = n_embd;
  prev_entropy_ = 100.0;
  prev_argmax_ = -1;
  stable_ = 0;
  prev_logp_.assign(static_cast<size_t>(V_), std::log(1.0 / static_cast<double>(V_)));
  if (c_ == ExitCriterion::LatentDiff || c_ == ExitCriterion::Cosine)
    prev_state_.assign(initial_state.begin(), initial_state.end());
}

namespace {

// log_softmax in double.
void log_softmax(std::span<const float> logits, std::vector<double>& out) {
  out.resize(logits.size());
  double mx = -INFINITY;
  for (float x : logits) mx = std::max(mx, static_cast<double>(x));
  double sum = 0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - mx);
  const double lse = mx + std::log(sum);
  for (size_t i = 0; i < logits.size(); ++i) out[i] = static_cast<double>(logits[i]) - lse;
}

}  // namespace

ExitEvaluator::Check ExitEvaluator::check(std::span<const float> state, std::span<const float> logits) {
  if (needs_logits() && static_cast<int64_t>(logits.size()) != V_)
    throw Error("exit criterion " + to_string(c_) + ": expected " + std::to_string(V_) + " logits, got " +
                std::to_string(logits.size()));
  double value = 0;
  switch (c_) {
    case ExitCriterion::None: return {0.0, false};
    case ExitCriterion::EntropyDiff: {
      std::vector<double> lp;
      log_softmax(logits, lp);
      double h = 0;
      for (double l : lp) {
        const double p = std::exp(l);
        h -= p * std::log(p + 1e-10);
      }
      value = std::fabs(h - prev_entropy_);
      prev_entropy_ = h;
      break;
    }
    case ExitCriterion::KL:
    case ExitCriterion::MinpKL: {
      std::vector<double> lp;
      log_softmax(logits, lp);
      if (c_ == ExitCriterion::MinpKL) {
        double mx = 0;
        for (double& l : lp) mx = std::max(mx, l = std::exp(l));
        const double floor = 1.0 / static_cast<double>(V_);
        double sum = 0;
        for (double& p : lp) sum += p = p < 0.1 * mx ? floor : p;
        for (double& p : lp) p = std::log(p / sum);
      }
      double kl = 0;
      for (size_t i = 0; i < lp.size(); ++i) kl += std::exp(prev_logp_[i]) * (prev_logp_[i] - lp[i]);
      value = kl;
      prev_logp_ = std::move(lp);
      break;
    }
    case ExitCriterion::ArgmaxStability: {
      const int64_t a = argmax(logits);
      stable_ = a == prev_argmax_ ? stable_ + 1 : 0;
      prev_argmax_ = a;
      value = static_cast<double>(stable_);
      return {value, stable_ >= static_cast<int64_t>(threshold_)};
    }
    case ExitCriterion::LatentDiff:
    case ExitCriterion::Cosine: {
      if (state.size() != prev_state_.size() || E_ <= 0) throw Error("exit criterion: state size changed within a call");
      const size_t rows = state.size() / static_cast<size_t>(E_);
      double acc = 0;
      for (size_t t = 0; t < rows; ++t) {
        const float* s = state.data() + t * static_cast<size_t>(E_);
        const float* p = prev_state_.data() + t * static_cast<size_t>(E_);
        double ss = 0, pp = 0, sp = 0, dd = 0;
        for (int64_t e = 0; e < E_; ++e) {
          const double a = s[e], b = p[e];
          ss += a * a, pp += b * b, sp += a * b, dd += (a - b) * (a - b);
        }
        acc += c_ == ExitCriterion::LatentDiff ? std::sqrt(dd) / std::sqrt(ss) : sp / (std::sqrt(ss) * std::sqrt(pp));
      }
      value = acc / static_cast<double>(rows);
      if (c_ == ExitCriterion::Cosine) value = 1.0 - value;
      prev_state_.assign(state.begin(), state.end());
      break;
    }
  }
  return {value, static_cast<float>(value) < static_cast<float>(threshold_)};
}

// ---- options ----

GenerateOptions GenerateOptions::from_generation_config(const GenerationConfig& g) {
  GenerateOptions o;
  o.sampling = g.sampling;
  o.stop_ids = g.eos_token_ids;
  o.stop_strings = g.stop_strings;
  if (g.max_new_tokens) o.max_new_tokens = *g.max_new_tokens;
  return o;
}

CacheStrategy GenerateOptions::resolved_cache_strategy() const {
  if (cache_strategy) return CacheStrategy::parse(*cache_strategy);
  return CacheStrategy::parse(adaptive ? "latest-m4" : "full");
}

void GenerateOptions::validate() const {
  if (steps < 0) throw Error("steps must be positive, got " + std::to_string(steps));
  if (!(init_scale >= 0.0f) || !std::isfinite(init_scale))
    throw Error("init_scale must be >= 0, got " + std::to_string(init_scale));
  if (max_new_tokens < 0) throw Error("max_new_tokens must be >= 0, got " + std::to_string(max_new_tokens));
  sampling.validate();
  resolved_cache_strategy();
  if (adaptive) {
    if (adaptive->min_steps < 0) throw Error("min_steps must be >= 0, got " + std::to_string(adaptive->min_steps));
    if (adaptive->check_every < 1)
      throw Error("check_criterion_every_n_steps must be >= 1, got " + std::to_string(adaptive->check_every));
    if (!std::isfinite(adaptive->threshold())) throw Error("exit threshold must be a finite number");
  }
  for (const auto& s : stop_strings)
    if (s.empty()) throw Error("stop strings must not be empty");
}

std::string to_string(FinishReason r) {
  switch (r) {
    case FinishReason::Length: return "length";
    case FinishReason::StopId: return "stop_id";
    case FinishReason::StopString: return "stop_string";
    case FinishReason::Cancelled: return "cancelled";
    case FinishReason::ContextFull: return "context_full";
  }
  return "?";
}

double GenerationResult::mean_steps() const {
  if (steps.empty()) return 0;
  double s = 0;
  for (int64_t x : steps) s += static_cast<double>(x);
  return s / static_cast<double>(steps.size());
}

// ---- the loop ----

namespace {

constexpr int32_t kBuiltinStops[] = {65504, 65505, 65508};  // <|begin_text|>, <|end_text|>, <|end_turn|>

// One sequence's generation state; persists across turns in a Session.
struct SeqRun {
  KVCache* cache = nullptr;
  std::vector<int32_t> context;  // every token: cached ones, then `input`
  std::vector<int32_t> input;    // tokens the next call feeds
  std::optional<Sampler> sampler;
  StateInitializer init{0};
  std::vector<float> warm;  // carried state [E] (continuous compute)
  std::optional<StreamDecoder> decoder;
  std::string pending;  // decoded text not yet emitted (may start a stop string)
  GenerationResult res;
  int64_t max_new = 0;
  bool done = false;
};

class Runner {
 public:
  Runner(Engine& engine, const GenerateOptions& opts, const Tokenizer* tok, const StreamCallbacks& cb)
      : engine_(engine), opts_(opts), cb_(cb), c_(engine.model().config()) {
    stops_.insert(std::begin(kBuiltinStops), std::end(kBuiltinStops));
    stops_.insert(opts.stop_ids.begin(), opts.stop_ids.end());
    if (!opts.stop_strings.empty() && !tok)
      throw Error("stop strings need a tokenizer (the model directory has no tokenizer.json)");
  }

  // Runs until every sequence is done.
  void run(std::vector<SeqRun*>& seqs) {
    const int64_t E = c_.n_embd, V = c_.vocab_size;
    const int64_t max_steps = opts_.resolved_steps(c_);
    const bool adaptive = opts_.adaptive.has_value();
    const ExitCriterion crit = adaptive ? opts_.adaptive->criterion : ExitCriterion::None;
    const bool needs_logits = criterion_needs_logits(crit);
    for (SeqRun* s : seqs)
      if (s->max_new <= 0 && !s->done) finish(*s, FinishReason::Length, seqs, s);
    while (true) {
      std::vector<SeqRun*> act;
      for (size_t i = 0; i < seqs.size(); ++i) {
        SeqRun* s = seqs[i];
        if (s->done) continue;
        if (opts_.cancel && opts_.cancel->load()) {
          finish(*s, FinishReason::Cancelled, seqs, s);
          continue;
        }
        if (s->cache->length() + static_cast<int64_t>(s->input.size()) > c_.block_size && s->cache->length() > 0) {
          finish(*s, FinishReason::ContextFull, seqs, s);
          continue;
        }
        act.push_back(s);
      }
      if (act.empty()) break;
      const size_t n = act.size();
      std::vector<SequenceInput> in(n);
      for (size_t i = 0; i < n; ++i) in[i] = {act[i]->input, act[i]->cache};
      engine_.begin(in);
      for (size_t i = 0; i < n; ++i) {
        SeqRun& s = *act[i];
        std::span<float> st = engine_.state(static_cast<int>(i));
        if (opts_.continuous && !s.warm.empty()) {
          for (size_t r = 0; r < st.size() / static_cast<size_t>(E); ++r)
            std::copy(s.warm.begin(), s.warm.end(), st.begin() + static_cast<std::ptrdiff_t>(r * static_cast<size_t>(E)));
        } else {
          s.init.fill(st, c_.init_std() * opts_.init_scale, c_.embed_scale());
        }
      }

      // Recurrence, with per-sequence exits.
      std::vector<TokenInfo> info(n);
      std::vector<ExitEvaluator> ev;
      if (adaptive)
        for (size_t i = 0; i < n; ++i) {
          ev.emplace_back(crit, opts_.adaptive->threshold(), V);
          ev.back().init(engine_.state(static_cast<int>(i)), E);
        }
      std::vector<uint8_t> running(n, 1), decoded(n, 0), mask(n, 0);
      size_t n_running = n;
      for (int64_t step = 0; step < max_steps && n_running > 0; ++step) {
        engine_.step(running);
        std::fill(decoded.begin(), decoded.end(), 0);
        if (!adaptive || crit == ExitCriterion::None) continue;
        const int64_t m = opts_.adaptive->min_steps, every = opts_.adaptive->check_every;
        if (step < m || (step - m) % every != 0) continue;
        if (needs_logits) {
          engine_.decode(false, running);
          for (size_t i = 0; i < n; ++i) decoded[i] = running[i];
        }
        std::fill(mask.begin(), mask.end(), 0);
        bool any_exit = false;
        for (size_t i = 0; i < n; ++i) {
          if (!running[i]) continue;
          auto chk = ev[i].check(engine_.state(static_cast<int>(i)),
                                 needs_logits ? engine_.logits(static_cast<int>(i)) : std::span<const float>{});
          info[i].check_values.push_back(chk.value);
          if (chk.exit) {
            info[i].exited_early = step + 1 < max_steps;
            info[i].steps = step + 1;
            running[i] = 0;
            --n_running;
            mask[i] = 1;
            any_exit = true;
          }
        }
        if (any_exit && !needs_logits) {
          engine_.decode(false, mask);
          for (size_t i = 0; i < n; ++i) decoded[i] |= mask[i];
        }
      }
      if (n_running > 0) {
        std::fill(mask.begin(), mask.end(), 0);
        bool need = false;
        for (size_t i = 0; i < n; ++i)
          if (running[i]) {
            info[i].steps = max_steps;
            if (!decoded[i]) mask[i] = 1, need = true;
          }
        if (need) engine_.decode(false, mask);
      }

      // Choose the tokens.
      for (size_t i = 0; i < n; ++i) {
        SeqRun& s = *act[i];
        const int b = static_cast<int>(i);
        auto logits = engine_.logits(b);
        if (static_cast<int64_t>(logits.size()) != V) throw Error("generate: unexpected logits row size");
        if (opts_.continuous) {
          auto src = adaptive ? std::span<const float>(engine_.state(b)) : engine_.latents(b);
          s.warm.assign(src.end() - E, src.end());
        }
        if (opts_.record_logits) s.res.logits.insert(s.res.logits.end(), logits.begin(), logits.end());
        const int32_t id = s.sampler->sample(logits, s.context);
        s.context.push_back(id);
        s.input.assign(1, id);
        s.res.ids.push_back(id);
        s.res.steps.push_back(info[i].steps);
        s.res.info.push_back(std::move(info[i]));
        const int seq_index = index_of(seqs, &s);
        if (cb_.on_token) cb_.on_token(seq_index, id, s.res.steps.back());
        if (stops_.count(id)) {
          finish(s, FinishReason::StopId, seqs, &s);
          continue;
        }
        if (s.decoder) {
          s.pending += s.decoder->push(id);
          if (emit(s, seq_index, false)) {
            finish(s, FinishReason::StopString, seqs, &s);
            continue;
          }
        }
        if (static_cast<int64_t>(s.res.ids.size()) >= s.max_new) finish(s, FinishReason::Length, seqs, &s);
      }
    }
  }

 private:
  static int index_of(const std::vector<SeqRun*>& seqs, const SeqRun* s) {
    for (size_t i = 0; i < seqs.size(); ++i)
      if (seqs[i] == s) return static_cast<int>(i);
    return -1;
  }

  // Emits what of `pending` can no longer become part of a stop string (all
  // of it when `final`). Returns true when a stop string was found.
  bool emit(SeqRun& s, int seq, bool final) {
    size_t cut = std::string::npos;
    for (const auto& stop : opts_.stop_strings) cut = std::min(cut, s.pending.find(stop));
    if (cut != std::string::npos) {
      out(s, seq, s.pending.substr(0, cut));
      s.pending.clear();
      return true;
    }
    size_t hold = 0;
    if (!final)
      for (const auto& stop : opts_.stop_strings)
        for (size_t k = std::min(stop.size() - 1, s.pending.size()); k > hold; --k)
          if (s.pending.compare(s.pending.size() - k, k, stop, 0, k) == 0) {
            hold = k;
            break;
          }
    out(s, seq, s.pending.substr(0, s.pending.size() - hold));
    s.pending.erase(0, s.pending.size() - hold);
    return false;
  }

  void out(SeqRun& s, int seq, const std::string& text) {
    if (text.empty()) return;
    s.res.text += text;
    if (cb_.on_text) cb_.on_text(seq, text);
  }

  void finish(SeqRun& s, FinishReason why, const std::vector<SeqRun*>& seqs, const SeqRun* self) {
    s.done = true;
    s.res.finish = why;
    if (s.decoder && why != FinishReason::StopString) {
      s.pending += s.decoder->flush();
      if (emit(s, index_of(seqs, self), true)) s.res.finish = FinishReason::StopString;
    }
    s.pending.clear();
    s.res.cache_bytes = s.cache->bytes();
  }

  Engine& engine_;
  const GenerateOptions& opts_;
  const StreamCallbacks& cb_;
  const ModelConfig& c_;
  std::set<int32_t> stops_;
};

CacheOptions cache_options(const GenerateOptions& opts, const ModelConfig& c, int64_t tokens) {
  CacheOptions co;
  co.strategy = opts.resolved_cache_strategy();
  co.seed = opts.seed;
  if (opts.preallocate_cache) {
    co.max_tokens = std::min<int64_t>(std::max<int64_t>(tokens, 1), c.block_size);
    co.max_steps = opts.resolved_steps(c);
  }
  return co;
}

}  // namespace

std::vector<GenerationResult> generate(Engine& engine, const std::vector<std::vector<int32_t>>& prompts,
                                       const GenerateOptions& opts, const Tokenizer* tokenizer,
                                       const StreamCallbacks& cb) {
  opts.validate();
  const ModelConfig& c = engine.model().config();
  std::vector<KVCache> caches;
  std::vector<SeqRun> runs(prompts.size());
  caches.reserve(prompts.size());
  std::vector<SeqRun*> ptrs;
  for (size_t b = 0; b < prompts.size(); ++b) {
    if (prompts[b].empty()) throw Error("generate: prompt " + std::to_string(b) + " is empty");
    const int64_t len = static_cast<int64_t>(prompts[b].size());
    caches.emplace_back(c, cache_options(opts, c, len + opts.max_new_tokens));
    SeqRun& r = runs[b];
    r.cache = &caches.back();
    r.context = prompts[b];
    r.input = prompts[b];
    r.sampler.emplace(opts.sampling, opts.seed + b);
    r.init = StateInitializer(opts.seed + b);
    if (tokenizer) r.decoder.emplace(*tokenizer, false);
    r.max_new = opts.max_new_tokens;
    ptrs.push_back(&r);
  }
  if (!ptrs.empty()) Runner(engine, opts, tokenizer, cb).run(ptrs);
  std::vector<GenerationResult> out;
  for (auto& r : runs) out.push_back(std::move(r.res));
  return out;
}

GenerationResult generate(Engine& engine, std::span<const int32_t> prompt, const GenerateOptions& opts,
                          const Tokenizer* tokenizer, const StreamCallbacks& cb) {
  std::vector<std::vector<int32_t>> p{std::vector<int32_t>(prompt.begin(), prompt.end())};
  return std::move(generate(engine, p, opts, tokenizer, cb).front());
}

// ---- Session ----

struct Session::State {
  std::unique_ptr<KVCache> cache;
  SeqRun run;
};

Session::Session(Engine& engine, GenerateOptions opts, const Tokenizer* tokenizer)
    : engine_(engine), opts_(std::move(opts)), tokenizer_(tokenizer) {
  opts_.validate();
  reset();
}

Session::~Session() = default;

void Session::reset() {
  const ModelConfig& c = engine_.model().config();
  st_ = std::make_unique<State>();
  st_->cache = std::make_unique<KVCache>(c, cache_options(opts_, c, c.block_size));
  st_->run.cache = st_->cache.get();
  st_->run.sampler.emplace(opts_.sampling, opts_.seed);
  st_->run.init = StateInitializer(opts_.seed);
}

const KVCache& Session::cache() const { return *st_->cache; }

const std::vector<int32_t>& Session::cached_tokens() const {
  // context holds the cached tokens followed by at most the last sampled one.
  auto& ctx = st_->run.context;
  if (static_cast<int64_t>(ctx.size()) > st_->cache->length()) ctx.resize(static_cast<size_t>(st_->cache->length()));
  return ctx;
}

GenerationResult Session::generate(std::span<const int32_t> context, const StreamCallbacks& cb) {
  opts_.validate();
  if (context.empty()) throw Error("session: empty context");
  SeqRun& r = st_->run;
  KVCache& cache = *st_->cache;
  const std::vector<int32_t>& cached = cached_tokens();
  size_t common = 0;
  while (common < cached.size() && common < context.size() && cached[common] == context[common]) ++common;
  if (common == context.size()) --common;  // at least one token must be fed
  cache.drop_last(cache.length() - static_cast<int64_t>(common));
  r.context.assign(context.begin(), context.end());
  r.input.assign(context.begin() + static_cast<std::ptrdiff_t>(common), context.end());
  if (r.sampler->params().repetition_penalty != opts_.sampling.repetition_penalty ||
      r.sampler->params().temperature != opts_.sampling.temperature || r.sampler->params().top_k != opts_.sampling.top_k ||
      r.sampler->params().top_p != opts_.sampling.top_p || r.sampler->params().min_p != opts_.sampling.min_p ||
      r.sampler->params().do_sample != opts_.sampling.do_sample)
    r.sampler.emplace(opts_.sampling, opts_.seed + cache.length());
  r.res = GenerationResult{};
  r.done = false;
  r.pending.clear();
  r.max_new = opts_.max_new_tokens;
  if (tokenizer_) r.decoder.emplace(*tokenizer_, false);
  std::vector<SeqRun*> ptrs{&r};
  Runner(engine_, opts_, tokenizer_, cb).run(ptrs);
  return std::move(r.res);
}

}  // namespace huginn
