// Keyed state: the KvStore interface, the key encoding, the typed tables and
// the per-operator backend that owns them. This header includes them all.
// Internal.

#ifndef WEIR_INTERNAL_STATE_TABLE_H_
#define WEIR_INTERNAL_STATE_TABLE_H_

#include "weir/internal/key_encoding.h"
#include "weir/internal/keyed_state_backend.h"
#include "weir/internal/kv_store.h"
#include "weir/internal/state_tables.h"

#endif  // WEIR_INTERNAL_STATE_TABLE_H_
