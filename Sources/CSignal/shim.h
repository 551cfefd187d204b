#include <signal/signal_protocol.h>
#include <signal/curve.h>
