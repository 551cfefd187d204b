#include <signal/signal_protocol.h>
#include <signal/curve.h>
#include <signal/protocol.h>
#include <signal/session_pre_key.h>
#include <signal/session_builder.h>
#include <signal/session_cipher.h>
#include <signal/group_session_builder.h>
#include <signal/group_cipher.h>
