<?php
// The tutorial's exchange: one message (to LF, MESSAGE_MAX_BYTES or EOF), logged; one reply.
declare(strict_types=1);

namespace AcceptLoop;

final class MessageService extends Service
{
    /** The bytes the log line names rather than shows. */
    private const NAMED = ["\\" => '\\\\', "\n" => '\\n', "\r" => '\\r', "\t" => '\\t'];

    private string $buffer = '';

    public function name(): string
    {
        return 'message';
    }

    public function onData(string $data, float $now): void
    {
        $this->buffer .= $data;
        $end = strpos(substr($this->buffer, 0, Protocol::MESSAGE_MAX_BYTES), Protocol::MESSAGE_TERMINATOR);
        if ($end !== false) {
            $this->reply(substr($this->buffer, 0, $end + 1));
        } elseif (strlen($this->buffer) >= Protocol::MESSAGE_MAX_BYTES) {
            $this->reply(substr($this->buffer, 0, Protocol::MESSAGE_MAX_BYTES));
        }
    }

    public function onEof(float $now): void
    {
        $this->reply($this->buffer);
    }

    private function reply(string $message): void
    {
        Os::log(Protocol::MESSAGE_LOG_PREFIX . self::escape($message));
        $this->conn->queue(Protocol::MESSAGE_REPLY);
        $this->conn->finish();
    }

    /** The message as one printable line: `\\`, `\n`, `\r`, `\t`, `\xHH` (lower case) for the rest. */
    public static function escape(string $data): string
    {
        $out = '';
        for ($i = 0, $n = strlen($data); $i < $n; $i++) {
            $byte = $data[$i];
            $code = ord($byte);
            $out .= self::NAMED[$byte] ?? ($code >= 0x20 && $code < 0x7f ? $byte : sprintf('\\x%02x', $code));
        }
        return $out;
    }
}
