<?php
// php-ffi-handler: the contract's five services as PHP closures that the C loop calls through
// FFI (the handler API, cext/acceptloop.h's "The handler API"). The bytes on the wire come from
// the PHP port's own helpers (ChargenService::chargenCycle, DaytimeService::daytimeLine,
// MessageService::completeMessage and escapeMessage), so PHP over C and the C services cannot
// say different things.
declare(strict_types=1);

namespace AcceptLoop\Ffi;

use AcceptLoop\ChargenService;
use AcceptLoop\Config;
use AcceptLoop\DaytimeService;
use AcceptLoop\MessageService;
use AcceptLoop\Os;
use AcceptLoop\Protocol;

final class Handler
{
    /** The struct al_handler the core calls; it and the closures live as long as this object. */
    public readonly \FFI\CData $struct;

    /** @var array<int, mixed> what each connection needs to remember, by its al_conn's address */
    private array $state = [];

    /** chargen: whole periods and LOW_WATER bytes more, so an offer from any place is full. */
    private string $pattern = '';
    private int $period = 0;

    public function __construct(private readonly \FFI $core, private readonly Config $config)
    {
        $this->struct = $core->new('struct al_handler');
        // php-ffi step: pass a callback
        // FFI makes each closure a C function (a libffi trampoline) that the core calls with
        // the connection; the arguments arrive as CData, the bytes as a pointer (Core declares
        // callbacks' byte pointers void *: a const char * would arrive as a string cut at its
        // first NUL). Nothing may be thrown back into C (FFI ends the process with a fatal
        // error): every call is guarded, and a failure ends that connection only.
        $h = $this->struct;
        $h->data = null;
        $h->on_open = fn ($conn, $data): int => $this->guard($conn, fn () => $this->onOpen($conn));
        $h->on_data = fn ($conn, $bytes, $len, $data): int => $this->guard(
            $conn,
            fn () => $this->onData($conn, \FFI::string($bytes, $len)),
        );
        $h->on_eof = fn ($conn, $data): int => $this->guard($conn, fn () => $this->onEof($conn));
        if ($config->service === 'chargen') {
            $h->produces = 1;
            $h->on_writable = fn ($conn, $data): int => $this->guard($conn, fn () => $this->onWritable($conn));
        }
        $h->on_close = function ($conn, $data): void {
            unset($this->state[self::key($conn)]);
        };
        // end php-ffi step
    }

    /** Runs one event; AL_OK, or one line on stderr and AL_ERR (the core closes the connection). */
    private function guard(\FFI\CData $conn, \Closure $event): int
    {
        try {
            $event();
            return $this->core->AL_OK;
        } catch (\Throwable $e) {
            try {
                Os::log("{$this->config->service} {$this->core->al_handler_peer($conn)}: handler raised "
                    . get_class($e) . ': ' . strtok($e->getMessage(), "\n") . '; closed');
            } catch (\Throwable) {
                // Not even the line could be written: the connection still ends.
            }
            return $this->core->AL_ERR;
        }
    }

    private static function key(\FFI\CData $conn): int
    {
        return \FFI::cast('uintptr_t', $conn)->cdata;
    }

    private function onOpen(\FFI\CData $conn): void
    {
        switch ($this->config->service) {
            case 'chargen':
                $this->state[self::key($conn)] = 0;
                break;
            case 'daytime':
                $this->write($conn, DaytimeService::daytimeLine($this->config->daytimeEpoch ?? time()));
                $this->core->al_handler_end($conn);
                break;
            case 'message':
                $this->state[self::key($conn)] = '';
                break;
        }
    }

    private function onData(\FFI\CData $conn, string $data): void
    {
        switch ($this->config->service) {
            case 'echo':
                $this->write($conn, $data);
                break;
            case 'message':
                $key = self::key($conn);
                if (!isset($this->state[$key])) {
                    return;   // answered already: what follows is dropped
                }
                $this->state[$key] .= $data;
                $message = MessageService::completeMessage($this->state[$key]);
                if ($message !== null) {
                    $this->reply($conn, $message);
                }
                break;
            // discard, chargen and daytime read and drop
        }
    }

    private function onEof(\FFI\CData $conn): void
    {
        $key = self::key($conn);
        if ($this->config->service === 'chargen') {
            return;   // a half-closed client may still be reading: keep sending until a send fails
        }
        if ($this->config->service === 'message' && isset($this->state[$key])) {
            $this->reply($conn, $this->state[$key]);
            return;
        }
        $this->core->al_handler_end($conn);
    }

    /** chargen: offer LOW_WATER bytes from where the connection stands; keep nothing. */
    private function onWritable(\FFI\CData $conn): void
    {
        if ($this->pattern === '') {
            $cycle = ChargenService::chargenCycle();
            $this->period = strlen($cycle);
            $this->pattern = str_repeat($cycle, intdiv(Protocol::LOW_WATER + $this->period - 1, $this->period) + 1);
        }
        $key = self::key($conn);
        $chunk = substr($this->pattern, $this->state[$key], Protocol::LOW_WATER);
        $sent = $this->core->al_handler_offer($conn, $chunk, strlen($chunk));
        if ($sent > 0) {
            $this->state[$key] = ($this->state[$key] + $sent) % $this->period;
        }
    }

    private function reply(\FFI\CData $conn, string $message): void
    {
        Os::log(Protocol::MESSAGE_LOG_PREFIX . MessageService::escapeMessage($message));
        unset($this->state[self::key($conn)]);
        $this->write($conn, Protocol::MESSAGE_REPLY);
        $this->core->al_handler_end($conn);
    }

    private function write(\FFI\CData $conn, string $bytes): void
    {
        $this->core->al_handler_write($conn, $bytes, strlen($bytes));   // AL_ERR once closed: on_close follows
    }
}
