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
        $message = self::completeMessage($this->buffer);
        if ($message !== null) {
            $this->reply($message, $now);
        }
    }

    /**
     * The message once $buffer holds a whole one: up to and with the first LF, or the first
     * MESSAGE_MAX_BYTES bytes; null while more may come (EOF ends it with what there is).
     */
    public static function completeMessage(string $buffer): ?string
    {
        $end = strpos(substr($buffer, 0, Protocol::MESSAGE_MAX_BYTES), Protocol::MESSAGE_TERMINATOR);
        if ($end !== false) {
            return substr($buffer, 0, $end + 1);
        }
        if (strlen($buffer) >= Protocol::MESSAGE_MAX_BYTES) {
            return substr($buffer, 0, Protocol::MESSAGE_MAX_BYTES);
        }
        return null;
    }

    public function onEof(float $now): void
    {
        $this->reply($this->buffer, $now);
    }

    private function reply(string $message, float $now): void
    {
        Os::log(Protocol::MESSAGE_LOG_PREFIX . self::escapeMessage($message));
        $this->conn->emit(Protocol::MESSAGE_REPLY, $now);
        $this->conn->finish();
    }

    /** The message as one printable line: `\\`, `\n`, `\r`, `\t`, `\xHH` (lower case) for the rest. */
    public static function escapeMessage(string $data): string
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
