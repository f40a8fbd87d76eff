/* person.c: see person.h.  (being written) */
#include "person.h"
