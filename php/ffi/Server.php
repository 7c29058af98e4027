<?php
// php-ffi: the C core's server run from PHP through FFI. PHP parses the contract's arguments
// (the PHP port's Args), fills a struct al_config, and hands the process to al_server_run;
// from then until the stop no PHP code runs, and the C loop serves in whichever model the
// arguments name (threads too: the core's threads never call back into PHP).
declare(strict_types=1);

namespace AcceptLoop\Ffi;

use AcceptLoop\Args;
use AcceptLoop\Config;
use AcceptLoop\Errno;
use AcceptLoop\Os;
use AcceptLoop\Protocol;
use AcceptLoop\UsageError;

final class Server
{
    /** The C core offers every model of the contract. */
    public const MODELS = Protocol::MODELS;

    /**
     * php-ffi-handler's: not threads. The core would call PHP from the threads it starts, at
     * once, and the CLI's PHP (NTS) has one engine state for the whole process: two callbacks
     * running at the same time corrupt it (a segfault within the first few clients).
     */
    public const HANDLER_MODELS = ['iterative', 'fork', 'event'];

    /**
     * Runs one server until SIGTERM or SIGINT; the exit code (0, 1 or 2: protocol.toml).
     *
     * @param list<string> $argv the arguments after the script's name
     */
    public static function main(array $argv, string $header, string $library, bool $handler = false): int
    {
        Os::installErrorHandler();
        $models = $handler ? self::HANDLER_MODELS : self::MODELS;
        $prog = 'php ' . ($handler ? 'acceptloop-ffi-handler.php' : 'acceptloop-ffi.php');
        try {
            $config = Args::parseArgs($argv, $models, getenv(Protocol::DAYTIME_EPOCH_ENV));
        } catch (UsageError $e) {
            Os::writeAll(STDERR, Args::usage($models, $prog) . $prog . ': ' . $e->getMessage() . "\n");
            return Protocol::EXIT_USAGE;
        }
        if ($config === null) {
            Os::writeAll(STDOUT, Args::help($models, $prog));
            return Protocol::EXIT_OK;
        }
        try {
            $core = Core::load($header, $library);
            if ($handler) {
                $core->type('struct al_handler');
            }
        } catch (\Throwable $e) {
            return self::fail("load {$library}: " . strtok($e->getMessage(), "\n"));
        }
        return self::serve($core, $config, $handler ? new Handler($core, $config) : null);
    }

    /** The C front end's main (cext/main.c) step by step, with the same lines on failure. */
    private static function serve(\FFI $core, Config $config, ?Handler $handler): int
    {
        $cfg = $core->new('struct al_config');
        $core->al_config_defaults(\FFI::addr($cfg));
        // al_server_new copies the host; this buffer only has to outlive that call.
        $host = $core->new('char[' . (strlen($config->host) + 1) . ']');
        \FFI::memcpy($host, $config->host . "\0", strlen($config->host) + 1);
        $cfg->service = $core->al_service_index($config->service);
        $cfg->model = $core->al_model_index($config->model);
        $cfg->host = \FFI::cast('char *', $host);
        $cfg->port = $config->port;
        $cfg->backlog = $config->backlog;
        $cfg->grace = $config->grace;
        $cfg->max_conns = $config->maxConns;
        $cfg->idle_timeout = $config->idleTimeout;
        $cfg->ipv6_only = (int) $config->ipv6Only;
        $cfg->has_daytime_epoch = (int) ($config->daytimeEpoch !== null);
        $cfg->daytime_epoch = $config->daytimeEpoch ?? 0;
        if ($handler !== null) {
            $cfg->handler = \FFI::addr($handler->struct);   // not copied: $handler outlives the run
        }

        $srv = $core->al_server_new(\FFI::addr($cfg));
        if ($srv === null) {
            // The arguments are checked already: what is left to fail is making the stop and
            // wake-up pipes (EMFILE at a low descriptor limit) or memory.
            return self::fail('pipe control: ' . Errno::describeError(Libc::errno()));
        }
        // php-ffi step: stop the loop
        // C handlers, not pcntl's: PHP runs its signal handlers between two opcodes, and
        // none runs while this process is inside al_server_run.
        if ($core->al_server_stop_on_signals($srv) !== $core->AL_OK) {
            $code = self::fail('sigaction: ' . Errno::describeError(Libc::errno()));
            $core->al_server_free($srv);
            return $code;
        }
        // end php-ffi step
        $err = $core->new('char[' . $core->AL_ERROR_LEN . ']');
        if ($core->al_server_open($srv, $err, $core->AL_ERROR_LEN) !== $core->AL_OK) {
            $code = self::fail(\FFI::string($err));
        } elseif (($announced = self::announce($core, $srv)) !== null) {
            $code = self::fail($announced);
        } elseif (!self::run($core, $srv, $err)) {
            $code = self::fail("{$config->model} loop: " . \FFI::string($err));
        } else {
            $code = Protocol::EXIT_OK;
        }
        // No handler may touch the server once it is freed: a late signal waits, unheard.
        $core->al_server_signals_release();
        $core->al_server_free($srv);
        return $code;
    }

    /** The loop, until the stop; false when it met an error it cannot survive ($err says which). */
    private static function run(\FFI $core, \FFI\CData $srv, \FFI\CData $err): bool
    {
        // php-ffi step: the interpreter lock
        // PHP (the CLI's NTS build) has no lock to release and no thread of its own: the whole
        // process goes into C for as long as the server runs, and no PHP code runs until the
        // call returns, not even a pcntl signal handler. The core's threads (threads model) and
        // children (fork) run C only. php-ffi-handler's closures run inside this call, on this
        // thread (iterative, event) or in a fork child's copy of it: one at a time, so there is
        // nothing to take either; which is why it cannot offer threads (HANDLER_MODELS).
        return $core->al_server_run($srv, $err, $core->AL_ERROR_LEN) === $core->AL_OK;
        // end php-ffi step
    }

    /** LISTENING for each listener, then READY, flushed; null, or the line naming what failed. */
    private static function announce(\FFI $core, \FFI\CData $srv): ?string
    {
        $text = '';
        $address = $core->new('char[' . $core->AL_ADDRESS_LEN . ']');
        $port = $core->new('int');
        for ($i = 0, $n = $core->al_server_listener_count($srv); $i < $n; $i++) {
            if ($core->al_server_listener_address($srv, $i, $address, $core->AL_ADDRESS_LEN, \FFI::addr($port))
                    !== $core->AL_OK) {
                return 'getsockname listener: ' . Errno::describeError(Libc::errno());
            }
            $text .= sprintf(Protocol::ANNOUNCE_LISTENING, \FFI::string($address), $port->cdata) . "\n";
        }
        Os::writeAll(STDOUT, $text . Protocol::ANNOUNCE_READY . "\n");
        return null;
    }

    /** One line on stderr and the failure exit code. */
    private static function fail(string $message): int
    {
        Os::log($message);
        return Protocol::EXIT_FAILURE;
    }
}
