// The ESP32-shaped unix port: a 32-bit build (-m32, see mpconfigvariant.mk) with
// single-precision floats, as ports/esp32/mpconfigport.h sets them
// (MICROPY_FLOAT_IMPL_FLOAT). The float setting must come before the common header,
// which sets double only when nothing chose yet.
#define MICROPY_CONFIG_ROM_LEVEL (MICROPY_CONFIG_ROM_LEVEL_EXTRA_FEATURES)
#define MICROPY_FLOAT_IMPL (MICROPY_FLOAT_IMPL_FLOAT)
#include "../mpconfigvariant_common.h"
