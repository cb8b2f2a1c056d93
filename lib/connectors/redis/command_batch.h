// Access to a CommandBuilder's encoded batch, for the writer that seals it
// into one EVALSHA request (the builder's buffers are private to keep the
// public API small).

#ifndef WEIR_LIB_CONNECTORS_REDIS_COMMAND_BATCH_H_
#define WEIR_LIB_CONNECTORS_REDIS_COMMAND_BATCH_H_

#include <cstddef>
#include <string>
#include <string_view>

#include "weir/connectors/redis.h"

namespace weir::redis::internal {

class CommandBuilderAccess {
 public:
  // True when no command was appended since the last Seal.
  static bool empty(const CommandBuilder& builder);
  // Bytes of the encoded commands.
  static size_t bytes(const CommandBuilder& builder);
  // Writes into `out` a RESP request of header_items + the builder's items:
  // "*<n>\r\n", `header` (header_items RESP bulk strings), the commands,
  // then the once-per-batch commands; and empties the builder.
  static void Seal(CommandBuilder& builder, std::string_view header, size_t header_items,
                   std::string& out);
};

}  // namespace weir::redis::internal

#endif  // WEIR_LIB_CONNECTORS_REDIS_COMMAND_BATCH_H_
