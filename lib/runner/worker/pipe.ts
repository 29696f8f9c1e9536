import net from 'node:net';
import type { Readable } from 'node:stream';

/**
 * Reading a worker's output pipe into one buffer reused for every read. The socket Node makes
 * for a child's stdio pipe gets a fresh 64 KiB buffer from libuv per read; a 200 MB line was
 * thousands of them, and their memory, outside V8's heap, went back only as fast as the
 * collector got to their wrappers (the supervisor's peak grew by 10-20 MiB on a busy machine).
 */

/** Bytes one read of a pipe can return: the size of the reused buffer. */
export const PIPE_READ_BYTES = 64 * 1024;

/** The libuv handle under a net.Socket: `_handle`, undocumented, what child_process wraps its pipes around. */
interface PipeHandle {
  reading: boolean;
  readStop(): number;
}

interface SocketWithHandle {
  _handle: PipeHandle | null;
}

export interface PipeReading {
  /** Resolves once the pipe is at its end, failed or was closed. */
  done: Promise<void>;
  /** Stops reading and closes the pipe. */
  close(): void;
}

/**
 * Reads `stream`, a child's stdio pipe, handing `onChunk` each read as a view of the one reused
 * buffer, valid during the call only. Node takes `onread` (net.Socket's option for a reused
 * buffer) only from a socket's constructor, so the pipe's handle moves from the socket
 * child_process made to a new one: call this before the event loop runs again after the spawn,
 * while the old socket cannot have read anything.
 */
export function readPipe(stream: Readable | null, onChunk: (chunk: Buffer) => void): PipeReading {
  const handle = takeHandle(stream);
  if (!handle) return { done: Promise.resolve(), close: () => undefined };
  const buffer = Buffer.alloc(PIPE_READ_BYTES);
  const onread = {
    buffer,
    callback: (nread: number): boolean => {
      onChunk(buffer.subarray(0, nread));
      return true;
    },
  };
  const socket = new net.Socket({ handle, readable: true, writable: false, onread } as net.SocketConstructorOpts);
  const done = new Promise<void>((resolve) => {
    socket.once('end', resolve);
    socket.on('error', () => resolve());
    socket.once('close', resolve);
  });
  return { done, close: () => socket.destroy() };
}

/** Detaches the handle from the socket child_process made (which started reading it), or null when there is none (a failed spawn). */
function takeHandle(stream: Readable | null): PipeHandle | null {
  const socket = stream as (Readable & SocketWithHandle) | null;
  const handle = socket?._handle;
  if (!socket || !handle) return null;
  handle.readStop();
  handle.reading = false;
  socket._handle = null;
  // with no handle, destroying only ends the socket: child_process counts its 'close'
  socket.destroy();
  return handle;
}
