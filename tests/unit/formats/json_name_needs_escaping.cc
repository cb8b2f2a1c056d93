// Not part of any binary: the ctests formats.json_literal_name_needing_escapes_is_a_compile_error
// and formats.json_name_probe_compiles_with_a_clean_name compile this file (with
// -fsyntax-only). A member name given as a literal is checked when compiled:
// one that JSON needs escaped must not compile, and the error must name
// json::Name's check; with WEIR_PROBE_CLEAN_NAME defined the same code
// compiles, so the failure is the name and nothing else.

#include <string>

#include "weir/formats/json.h"

std::string Write() {
  std::string out;
#ifdef WEIR_PROBE_CLEAN_NAME
  weir::json::Writer(out).BeginObject().Member("a quote", 1).EndObject();
#else
  weir::json::Writer(out).BeginObject().Member("a \"quote\"", 1).EndObject();
#endif
  return out;
}
