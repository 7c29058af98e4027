<?php
// --max-conns across the workers (Workers): one count in System V shared memory, taken and
// given back under an flock() lock, so no two workers can both take the last slot (Python:
// server/workers.py SharedSlots; C: one atomic counter, the workers being threads).
//
// Nothing outlives the server, however it ends: the memory is private (IPC_PRIVATE) and marked
// for removal at once, so it goes when the last worker lets go of it; the lock is a temporary
// file opened once per worker (flock excludes open file descriptions, not processes, so each
// worker needs its own) and unlinked before the first fork. A worker that dies holding the lock
// lets go of it with its last descriptor.
declare(strict_types=1);

namespace AcceptLoop;

final class SharedSlots
{
    private const IPC_PRIVATE = 0;

    private readonly \Shmop $memory;
    /** @var list<resource> one open file description per worker */
    private array $locks = [];
    /** @var resource|null this worker's, once keep() chose it */
    private $lock = null;

    /** @throws SetupError `shmget workers: ...`, `open workers: ...` */
    public function __construct(private readonly int $limit, int $workers)
    {
        try {
            $this->memory = shmop_open(self::IPC_PRIVATE, 'c', 0600, 8);
            shmop_delete($this->memory);
            shmop_write($this->memory, pack('q', 0), 0);
        } catch (\ErrorException $e) {
            throw new SetupError('shmget', 'workers', 0, $e->getMessage());
        }
        $path = sys_get_temp_dir() . '/acceptloop-slots-' . getmypid() . '-' . bin2hex(random_bytes(6));
        try {
            for ($i = 0; $i < $workers; $i++) {
                $this->locks[] = fopen($path, $i === 0 ? 'x' : 'r');
            }
        } catch (\ErrorException $e) {
            $failed = self::failure('open', $e);
        }
        if ($this->locks !== []) {
            unlink($path);   // created: the open descriptions keep it, and nothing else can reach it
        }
        if (isset($failed)) {
            $this->release();
            throw $failed;
        }
    }

    /**
     * `open workers: Too many open files (EMFILE)`: a file call's warning carries strerror's
     * text only, so the errno is found by its text.
     */
    private static function failure(string $step, \ErrorException $e): SetupError
    {
        $text = substr(strrchr($e->getMessage(), ':') ?: ': ' . $e->getMessage(), 2);
        foreach (get_defined_constants(true)['sockets'] as $constant => $value) {
            if (str_starts_with($constant, 'SOCKET_E') && socket_strerror($value) === $text) {
                return new SetupError($step, 'workers', $value, Errno::describeError($value));
            }
        }
        return new SetupError($step, 'workers', 0, $text);
    }

    /** In worker $index (from 0): its own lock description; the others' are closed. */
    public function keep(int $index): void
    {
        $this->lock = $this->locks[$index];
        foreach ($this->locks as $i => $lock) {
            if ($i !== $index) {
                fclose($lock);
            }
        }
        $this->locks = [];
    }

    /** Whether one more connection fits in the whole server; if so it is counted. */
    public function take(): bool
    {
        flock($this->lock, LOCK_EX);
        $held = $this->held();
        if ($held < $this->limit) {
            shmop_write($this->memory, pack('q', $held + 1), 0);
        }
        flock($this->lock, LOCK_UN);
        return $held < $this->limit;
    }

    /** A counted connection has ended. */
    public function give(): void
    {
        flock($this->lock, LOCK_EX);
        shmop_write($this->memory, pack('q', $this->held() - 1), 0);
        flock($this->lock, LOCK_UN);
    }

    /** The parent, once the workers are forked: it holds none of their locks. */
    public function release(): void
    {
        foreach ($this->locks as $lock) {
            fclose($lock);
        }
        $this->locks = [];
    }

    private function held(): int
    {
        return unpack('q', shmop_read($this->memory, 0, 8))[1];
    }
}
