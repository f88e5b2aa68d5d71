// Single-thread encode/decode throughput on the golden corpus, as the
// reference measurement of golden/tokenizer/README.md: every corpus.json text
// in file order, cycled until >= 10,000,000 UTF-8 bytes (34,037 documents),
// each encoded on its own with add_special_tokens=false, one warm-up pass,
// then timed passes. 1 MB = 10^6 bytes. Expected token totals: huginn-like
// 4,280,375; llama3-like 4,608,341 (checked; a mismatch is reported as an
// error).
//
// Golden data: $HUGINN_GOLDEN_DIR, else the HUGINN_GOLDEN_DIR macro, else
// ../shared/golden.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "huginn/tokenizer.h"
#include "golden_dir.h"

namespace {

using huginn::test::golden_dir;

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

const std::vector<std::string>& documents() {
  static const std::vector<std::string> docs = [] {
    auto corpus = nlohmann::json::parse(slurp(golden_dir() + "/tokenizer/corpus.json"));
    std::vector<std::string> texts;
    for (const auto& e : corpus) texts.push_back(e["text"].get<std::string>());
    std::vector<std::string> out;
    size_t total = 0;
    for (size_t i = 0; total < 10000000; i = (i + 1) % texts.size()) {
      out.push_back(texts[i]);
      total += texts[i].size();
    }
    return out;
  }();
  return docs;
}

void BM_EncodeCorpus(benchmark::State& state, const char* name, size_t expected_tokens) {
  huginn::Tokenizer tok = huginn::Tokenizer::load(golden_dir() + "/tokenizer/" + name + "/tokenizer.json");
  const auto& docs = documents();
  size_t bytes = 0;
  for (const auto& d : docs) bytes += d.size();
  size_t tokens = 0;
  for (const auto& d : docs) tokens += tok.encode(d).size();  // warm-up pass
  if (tokens != expected_tokens) {
    state.SkipWithError(("token total " + std::to_string(tokens) + " != expected " + std::to_string(expected_tokens)).c_str());
    return;
  }
  for (auto _ : state) {
    size_t n = 0;
    for (const auto& d : docs) n += tok.encode(d).size();
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
  state.counters["documents"] = static_cast<double>(docs.size());
  state.counters["tokens"] = static_cast<double>(tokens);
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(bytes) / 1e6 * static_cast<double>(state.iterations()),
                                              benchmark::Counter::kIsRate);
}

void BM_DecodeCorpus(benchmark::State& state, const char* name) {
  huginn::Tokenizer tok = huginn::Tokenizer::load(golden_dir() + "/tokenizer/" + name + "/tokenizer.json");
  std::vector<std::vector<int32_t>> ids;
  size_t bytes = 0;
  for (const auto& d : documents()) {
    ids.push_back(tok.encode(d));
    bytes += d.size();
  }
  for (auto _ : state) {
    size_t n = 0;
    for (const auto& v : ids) n += tok.decode(v).size();
    benchmark::DoNotOptimize(n);
  }
  state.counters["MB/s"] = benchmark::Counter(static_cast<double>(bytes) / 1e6 * static_cast<double>(state.iterations()),
                                              benchmark::Counter::kIsRate);
}

void BM_StreamDecode(benchmark::State& state) {
  huginn::Tokenizer tok =
      huginn::Tokenizer::load(golden_dir() + "/tokenizer/huginn-like/tokenizer.json");
  std::vector<int32_t> ids;
  for (size_t i = 0; i < 200; ++i) {
    auto v = tok.encode(documents()[i]);
    ids.insert(ids.end(), v.begin(), v.end());
  }
  for (auto _ : state) {
    huginn::StreamDecoder sd(tok);
    size_t n = 0;
    for (int32_t id : ids) n += sd.push(id).size();
    n += sd.flush().size();
    benchmark::DoNotOptimize(n);
  }
  state.counters["tokens/s"] =
      benchmark::Counter(static_cast<double>(ids.size()) * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_CAPTURE(BM_EncodeCorpus, huginn_like, "huginn-like", 4280375)
    ->Unit(benchmark::kMillisecond)->Iterations(1)->Repetitions(3)->ReportAggregatesOnly(false);
BENCHMARK_CAPTURE(BM_EncodeCorpus, llama3_like, "llama3-like", 4608341)
    ->Unit(benchmark::kMillisecond)->Iterations(1)->Repetitions(3);
BENCHMARK_CAPTURE(BM_DecodeCorpus, huginn_like, "huginn-like")->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_StreamDecode)->Unit(benchmark::kMillisecond);
