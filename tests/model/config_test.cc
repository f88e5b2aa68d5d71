// config.json parsing: defaults for missing keys, unknown keys ignored, and
// an error naming the source and the key for anything the engine cannot run.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "throws_with.h"
#include "huginn/config.h"
#include "huginn/error.h"
#include "test_util.h"

namespace huginn {
namespace {

using json = nlohmann::json;

using test::ThrowsWith;

json golden_tiny() { return json::parse(test::read_file(test::golden_dir() + "/model/tiny/config.json")); }

void expect_same(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.model_type, b.model_type);
  EXPECT_EQ(a.n_embd, b.n_embd);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.block_size, b.block_size);
  EXPECT_EQ(a.n_layers_in_prelude, b.n_layers_in_prelude);
  EXPECT_EQ(a.n_layers_in_recurrent_block, b.n_layers_in_recurrent_block);
  EXPECT_EQ(a.n_layers_in_coda, b.n_layers_in_coda);
  EXPECT_EQ(a.mean_recurrence, b.mean_recurrence);
  EXPECT_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.qk_bias, b.qk_bias);
  EXPECT_EQ(a.rope_base, b.rope_base);
  EXPECT_EQ(a.tie_embeddings, b.tie_embeddings);
  EXPECT_EQ(a.bias, b.bias);
  EXPECT_EQ(a.injection_type, b.injection_type);
  EXPECT_EQ(a.torch_dtype, b.torch_dtype);
  EXPECT_EQ(a.bos_token_id, b.bos_token_id);
  EXPECT_EQ(a.eos_token_id, b.eos_token_id);
  EXPECT_EQ(a.pad_token_id, b.pad_token_id);
}

TEST(Config, DefaultsAreHuginn0125) {
  ModelConfig c = ModelConfig::parse("{}");
  EXPECT_EQ(c.model_type, "huginn_raven");
  EXPECT_EQ(c.n_embd, 5280);
  EXPECT_EQ(c.n_heads, 55);
  EXPECT_EQ(c.head_dim(), 96);
  EXPECT_EQ(c.intermediate_size, 17920);
  EXPECT_EQ(c.vocab_size, 65536);
  EXPECT_EQ(c.block_size, 4096);
  EXPECT_EQ(c.n_layers_in_prelude, 2);
  EXPECT_EQ(c.n_layers_in_recurrent_block, 4);
  EXPECT_EQ(c.n_layers_in_coda, 2);
  EXPECT_EQ(c.mean_recurrence, 32);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-6);
  EXPECT_TRUE(c.qk_bias);
  EXPECT_DOUBLE_EQ(c.rope_base, 50000.0);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_FALSE(c.bias);
  EXPECT_EQ(c.injection_type, "linear");
  EXPECT_EQ(c.torch_dtype, "bfloat16");
  EXPECT_EQ(c.bos_token_id, 65504);
  EXPECT_EQ(c.eos_token_id, 65505);
  EXPECT_EQ(c.pad_token_id, 65509);
  expect_same(c, ModelConfig{});
  EXPECT_NEAR(c.embed_scale(), std::sqrt(5280.0), 1e-12);
  EXPECT_NEAR(c.init_std(), std::sqrt(2.0 / (5 * 5280.0)), 1e-15);
}

TEST(Config, GoldenTiny) {
  ModelConfig c = ModelConfig::load(test::golden_dir() + "/model/tiny/config.json");
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.head_dim(), 16);
  EXPECT_EQ(c.intermediate_size, 160);
  EXPECT_EQ(c.vocab_size, 512);
  EXPECT_EQ(c.block_size, 256);
  EXPECT_EQ(c.mean_recurrence, 8);
  EXPECT_EQ(c.n_layers_in_prelude + c.n_layers_in_recurrent_block + c.n_layers_in_coda, 8);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_TRUE(c.qk_bias);
  EXPECT_DOUBLE_EQ(c.rope_base, 50000.0);
  ModelConfig o = ModelConfig::load(test::golden_dir() + "/model/odd/config.json");
  EXPECT_EQ(o.n_embd, 120);
  EXPECT_EQ(o.head_dim(), 24);
  EXPECT_EQ(o.vocab_size, 1000);
  EXPECT_EQ(o.mean_recurrence, 16);
}

// Removing any one key keeps that key's default and the others' values.
TEST(Config, EveryMissingKeyTakesItsDefault) {
  const json full = golden_tiny();
  const ModelConfig base = ModelConfig::parse(full.dump());
  const ModelConfig d;
  for (auto it = full.begin(); it != full.end(); ++it) {
    json j = full;
    j.erase(it.key());
    SCOPED_TRACE(it.key());
    ModelConfig c;
    try {
      c = ModelConfig::parse(j.dump());
    } catch (const Error& e) {
      // Dropping a size can make the rest inconsistent (n_embd 5280 with the
      // tiny n_heads 4 is fine, but check the message names a key anyway).
      EXPECT_NE(std::string(e.what()).find("key '"), std::string::npos) << e.what();
      continue;
    }
    ModelConfig want = base;
    const std::string& k = it.key();
    if (k == "n_embd") want.n_embd = d.n_embd;
    if (k == "n_heads") want.n_heads = d.n_heads;
    if (k == "intermediate_size") want.intermediate_size = d.intermediate_size;
    if (k == "vocab_size") want.vocab_size = d.vocab_size;
    if (k == "block_size") want.block_size = d.block_size;
    if (k == "n_layers_in_prelude") want.n_layers_in_prelude = d.n_layers_in_prelude;
    if (k == "n_layers_in_recurrent_block") want.n_layers_in_recurrent_block = d.n_layers_in_recurrent_block;
    if (k == "n_layers_in_coda") want.n_layers_in_coda = d.n_layers_in_coda;
    if (k == "mean_recurrence") want.mean_recurrence = d.mean_recurrence;
    if (k == "norm_eps") want.norm_eps = d.norm_eps;
    if (k == "qk_bias") want.qk_bias = d.qk_bias;
    if (k == "rope_base") want.rope_base = d.rope_base;
    if (k == "tie_embeddings") want.tie_embeddings = d.tie_embeddings;
    if (k == "bias") want.bias = d.bias;
    if (k == "injection_type") want.injection_type = d.injection_type;
    if (k == "torch_dtype") want.torch_dtype = d.torch_dtype;
    if (k == "bos_token_id") want.bos_token_id = d.bos_token_id;
    if (k == "eos_token_id") want.eos_token_id = d.eos_token_id;
    if (k == "pad_token_id") want.pad_token_id = d.pad_token_id;
    if (k == "model_type") want.model_type = d.model_type;
    expect_same(c, want);
  }
}

TEST(Config, NullMeansDefault) {
  ModelConfig c = ModelConfig::parse(R"({"n_embd": null, "qk_bias": null, "injection_type": null, "eos_token_id": null})");
  expect_same(c, ModelConfig{});
}

TEST(Config, UnknownKeysAreIgnored) {
  json j = golden_tiny();
  j["some_future_key"] = {{"nested", {1, 2, 3}}};
  j["architectures"] = {"RavenForCausalLM"};
  j["padding_multiple"] = 4096;
  j["effective_expected_depth"] = 132;
  j[""] = nullptr;
  ModelConfig c = ModelConfig::parse(j.dump());
  expect_same(c, ModelConfig::parse(golden_tiny().dump()));
}

TEST(Config, IntegralFloatsAndTokenLists) {
  ModelConfig c = ModelConfig::parse(R"({"n_embd": 64.0, "n_heads": 4, "eos_token_id": [7, 8], "bos_token_id": 3,
                                          "norm_eps": 1, "rope_base": 10000})");
  EXPECT_EQ(c.n_embd, 64);
  EXPECT_EQ(c.eos_token_id, 7);
  EXPECT_EQ(c.bos_token_id, 3);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1.0);
  EXPECT_DOUBLE_EQ(c.rope_base, 10000.0);
}

TEST(Config, WrongTypesNameTheKey) {
  struct Case {
    const char* key;
    json value;
  };
  const std::vector<Case> cases = {
      {"model_type", 5},
      {"n_embd", "64"},
      {"n_embd", 64.5},
      {"n_embd", true},
      {"n_embd", json::array({64})},
      {"n_heads", json::object()},
      {"intermediate_size", "160"},
      {"vocab_size", 1e300},
      {"block_size", false},
      {"n_layers_in_prelude", "2"},
      {"n_layers_in_recurrent_block", 4.25},
      {"n_layers_in_coda", json::array()},
      {"mean_recurrence", "32"},
      {"norm_eps", "1e-6"},
      {"norm_eps", true},
      {"qk_bias", "true"},
      {"qk_bias", 1},
      {"rope_base", json::array({50000})},
      {"tie_embeddings", 0},
      {"bias", "false"},
      {"injection_type", json::array({"linear"})},
      {"torch_dtype", 16},
      {"bos_token_id", "65504"},
      {"eos_token_id", json::array()},
      {"eos_token_id", json::array({"x"})},
      {"pad_token_id", 1.5},
      {"num_key_value_heads", "4"},
      {"test_time_noise", "0"},
  };
  for (const auto& c : cases) {
    json j = golden_tiny();
    j[c.key] = c.value;
    EXPECT_TRUE(ThrowsWith([&] { ModelConfig::parse(j.dump(), "dir/config.json"); },
                           {"dir/config.json", std::string("'") + c.key + "'"}))
        << c.key << " = " << c.value.dump();
  }
}

TEST(Config, UnsupportedValuesNameTheKey) {
  struct Case {
    std::string patch;  // merged into the tiny config
    std::string key, why;
  };
  const std::vector<Case> cases = {
      {R"({"model_type": "llama"})", "model_type", "huginn_raven"},
      {R"({"n_embd": 66})", "n_heads", "not divisible"},
      {R"({"n_embd": 60, "n_heads": 4})", "n_heads", "even"},  // head_dim 15
      {R"({"n_embd": 4, "n_heads": 4})", "n_heads", "even"},   // head_dim 1
      {R"({"bias": true})", "bias", "bias"},
      {R"({"injection_type": "add"})", "injection_type", "linear"},
      {R"({"injection_type": "gate"})", "injection_type", "linear"},
      {R"({"n_embd": -64})", "n_embd", "positive"},
      {R"({"n_embd": 0})", "n_embd", "positive"},
      {R"({"n_heads": 0})", "n_heads", "positive"},
      {R"({"n_heads": -4})", "n_heads", "positive"},
      {R"({"intermediate_size": -1})", "intermediate_size", "positive"},
      {R"({"vocab_size": 0})", "vocab_size", "positive"},
      {R"({"block_size": -256})", "block_size", "positive"},
      {R"({"n_layers_in_recurrent_block": 0})", "n_layers_in_recurrent_block", "positive"},
      {R"({"mean_recurrence": -8})", "mean_recurrence", "positive"},
      {R"({"n_layers_in_prelude": -1})", "n_layers_in_prelude", ""},
      {R"({"n_layers_in_coda": -2})", "n_layers_in_coda", ""},
      {R"({"n_embd": 18446744073709551615})", "n_embd", ""},  // wraps to -1 as int64
      {R"({"n_embd": 9223372036854775807})", "n_embd", "larger than supported"},
      {R"({"vocab_size": 1e15})", "vocab_size", "larger than supported"},
      {R"({"norm_eps": 0})", "norm_eps", ""},
      {R"({"norm_eps": -1e-6})", "norm_eps", ""},
      {R"({"rope_base": 1})", "rope_base", ""},
      {R"({"rope_base": -50000})", "rope_base", ""},
      {R"({"rope_base": 1e999})", "", ""},  // not even valid JSON (infinite literal): parse error
      {R"({"num_key_value_heads": 2})", "num_key_value_heads", "grouped-query"},
      {R"({"test_time_noise": 0.1})", "test_time_noise", ""},
  };
  for (const auto& c : cases) {
    json j = golden_tiny();
    json patch;
    try {
      patch = json::parse(c.patch);
    } catch (const json::exception&) {
      // The patch itself is not JSON that nlohmann accepts: feed the text raw.
      EXPECT_TRUE(ThrowsWith([&] { ModelConfig::parse(c.patch, "c.json"); }, {"c.json"})) << c.patch;
      continue;
    }
    j.merge_patch(patch);
    std::initializer_list<std::string> want = {"c.json", c.key.empty() ? "c.json" : "'" + c.key + "'", c.why};
    EXPECT_TRUE(ThrowsWith([&] { ModelConfig::parse(j.dump(), "c.json"); }, want)) << c.patch;
  }
  // Accepted: GQA key equal to n_heads, zero noise, zero prelude/coda layers.
  json j = golden_tiny();
  j["num_key_value_heads"] = 4;
  j["test_time_noise"] = 0;
  j["n_layers_in_prelude"] = 0;
  j["n_layers_in_coda"] = 0;
  EXPECT_NO_THROW(ModelConfig::parse(j.dump()));
}

TEST(Config, BadJsonAndNotAnObject) {
  for (std::string t : {"", "{", "{\"n_embd\": 64,}", "{'n_embd': 64}", "nul", "\xff", "{\"a\":1}{\"b\":2}"})
    EXPECT_TRUE(ThrowsWith([&] { ModelConfig::parse(t, "my/config.json"); }, {"my/config.json", "JSON"})) << t;
  for (std::string t : {"[]", "[{}]", "1", "\"huginn\"", "null", "true"})
    EXPECT_TRUE(ThrowsWith([&] { ModelConfig::parse(t, "my/config.json"); }, {"my/config.json", "object"})) << t;
}

TEST(Config, LoadNamesThePath) {
  const std::string dir = test::temp_dir();
  EXPECT_TRUE(ThrowsWith([&] { ModelConfig::load(dir + "/missing.json"); }, {dir + "/missing.json"}));
  std::ofstream(dir + "/config.json") << R"({"model_type": "huginn_raven", "bias": true})";
  EXPECT_TRUE(ThrowsWith([&] { ModelConfig::load(dir + "/config.json"); }, {dir + "/config.json", "'bias'"}));
  std::ofstream(dir + "/bad.json") << "{ oops";
  EXPECT_TRUE(ThrowsWith([&] { ModelConfig::load(dir + "/bad.json"); }, {dir + "/bad.json", "JSON"}));
}

TEST(Config, ValidateDirectly) {
  ModelConfig c;
  EXPECT_NO_THROW(c.validate());
  c.n_heads = 7;
  EXPECT_TRUE(ThrowsWith([&] { c.validate("v.json"); }, {"v.json", "'n_heads'"}));
}

TEST(Config, ToJsonRoundTrips) {
  ModelConfig c = ModelConfig::load(test::golden_dir() + "/model/odd/config.json");
  json j = json::parse(c.to_json());
  EXPECT_EQ(j["head_dim"], 24);
  expect_same(ModelConfig::parse(c.to_json()), c);
}

}  // namespace
}  // namespace huginn
