import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parse } from 'smol-toml';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/spool.js';

/**
 * install.sh from a local checkout into a temporary HOME, twice, with stub `claude` and
 * `codex` CLIs that record their argv; then uninstall: HOME is back to how it was, byte for
 * byte, config files included. And what it says when asked for help, or to uninstall
 * nothing.
 */

const temps: string[] = [];
afterAll(() => {
  for (const dir of temps) fs.rmSync(dir, { recursive: true, force: true });
});

function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (current: string): void => {
    for (const name of fs.readdirSync(current).sort()) {
      const full = path.join(current, name);
      const rel = path.relative(dir, full);
      const stat = fs.lstatSync(full);
      const mode = (stat.mode & 0o7777).toString(8);
      if (stat.isSymbolicLink()) out[rel] = `link ${fs.readlinkSync(full)}`;
      else if (stat.isDirectory()) {
        out[`${rel}/`] = `dir ${mode}`;
        walk(full);
      } else out[rel] = `file ${mode} ${crypto.createHash('sha256').update(fs.readFileSync(full)).digest('hex')}`;
    }
  };
  walk(dir);
  return out;
}

const CURSOR_CONFIG = `{
    // servers I use
    "mcpServers": {
        "github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"]},
        "fs":     {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-filesystem", "/home"]}
    }
}
`;
const DESKTOP_CONFIG = '{"mcpServers":{"memory":{"command":"npx","args":["-y","@modelcontextprotocol/server-memory"]}},"globalShortcut":"Alt+Space"}';
const GEMINI_SETTINGS = `{
  "theme": "GitHub",
  "mcpServers": {}
}
`;

interface Home {
  root: string;
  home: string;
  env: NodeJS.ProcessEnv;
  records: string;
}

function makeHome(): Home {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-install-'));
  temps.push(root);
  const home = path.join(root, 'home');
  const bin = path.join(root, 'bin');
  const records = path.join(root, 'records');
  for (const dir of [home, bin, records]) fs.mkdirSync(dir);
  for (const name of ['claude', 'codex']) fs.symlinkSync(path.join(ROOT, 'test/stubs/client-cli-stub.mjs'), path.join(bin, name));
  fs.writeFileSync(path.join(home, '.bashrc'), 'export EDITOR=vim\n');
  fs.mkdirSync(path.join(home, '.cursor'));
  fs.writeFileSync(path.join(home, '.cursor/mcp.json'), CURSOR_CONFIG, { mode: 0o644 });
  fs.mkdirSync(path.join(home, '.config/Claude'), { recursive: true });
  fs.writeFileSync(path.join(home, '.config/Claude/claude_desktop_config.json'), DESKTOP_CONFIG);
  fs.mkdirSync(path.join(home, '.gemini'));
  fs.writeFileSync(path.join(home, '.gemini/settings.json'), GEMINI_SETTINGS);
  const systemPath = [path.dirname(process.execPath), '/usr/local/bin', '/usr/bin', '/bin'].join(':');
  const env: NodeJS.ProcessEnv = {
    HOME: home,
    PATH: `${bin}:${systemPath}`,
    STUB_RECORD_DIR: records,
    STUB_STATE_DIR: records,
    // npm's cache stays outside the HOME under test (and warm, so no download is needed)
    npm_config_cache: path.join(os.homedir(), '.npm'),
    npm_config_update_notifier: 'false',
    TERM: 'dumb',
  };
  return { root, home, env, records };
}

function installSh(home: Home, args: string[]): { code: number | null; out: string } {
  const result = spawnSync('bash', [path.join(ROOT, 'install.sh'), ...args], { env: home.env, encoding: 'utf8', timeout: 10 * 60_000 });
  return { code: result.status, out: `${result.stdout}${result.stderr}` };
}

function calls(home: Home, name: string): string[][] {
  const log = path.join(home.records, `${name}.log`);
  return fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').map((line) => JSON.parse(line)) : [];
}

describe('install.sh', () => {
  it('installs from a local checkout, registers the clients, is idempotent, and uninstall restores HOME byte for byte', () => {
    const home = makeHome();
    const before = snapshot(home.home);

    const first = installSh(home, ['--yes', `--source=${ROOT}`]);
    expect(first.code, first.out).toBe(0);
    const prefix = path.join(home.home, '.local/share/agent-async-mcp');
    const link = path.join(home.home, '.local/bin/agent-async');
    expect(fs.readlinkSync(link)).toBe(path.join(prefix, 'bin/agent-async.js'));
    expect(first.out).toMatch(/\.local\/bin is not on your PATH/);
    const version = spawnSync(link, ['--version'], { env: home.env, encoding: 'utf8' });
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);

    const launcher = path.join(prefix, 'bin/agent-async.js');
    const claudeAdds = calls(home, 'claude').filter((argv) => argv[1] === 'add');
    expect(claudeAdds).toEqual([['mcp', 'add', '-s', 'user', 'agent-async', '--', expect.stringMatching(/node$/), launcher, 'serve']]);
    // codex's registration is written into its config.toml: `codex mcp add` cannot write what `codex exec` needs
    expect(calls(home, 'codex').filter((argv) => argv[1] === 'add')).toEqual([]);
    expect((parse(fs.readFileSync(path.join(home.home, '.codex/config.toml'), 'utf8')) as any).mcp_servers['agent-async']).toMatchObject({
      command: expect.stringMatching(/node$/), args: [launcher, 'serve'], required: true, tool_timeout_sec: 120,
    });
    const cursor = fs.readFileSync(path.join(home.home, '.cursor/mcp.json'), 'utf8');
    expect(cursor.startsWith(CURSOR_CONFIG.trimEnd().slice(0, -10))).toBe(true);
    expect(cursor).toContain('"github": {"command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"]}');
    expect(cursor).toContain(launcher);
    expect(fs.readFileSync(path.join(home.home, '.config/Claude/claude_desktop_config.json'), 'utf8')).toContain(launcher);
    expect(JSON.parse(fs.readFileSync(path.join(home.home, '.gemini/settings.json'), 'utf8'))).toMatchObject({
      theme: 'GitHub', mcpServers: { 'agent-async': { command: expect.stringMatching(/node$/), args: [launcher, 'serve'] } },
    });
    expect(fs.existsSync(path.join(home.home, '.cursor/mcp.json.agent-async.bak'))).toBe(true);

    const listed = JSON.parse(spawnSync(link, ['list-agents', '--json'], { env: home.env, encoding: 'utf8' }).stdout);
    const registered = Object.fromEntries(listed.clients.map((c: any) => [c.client, c.registered]));
    expect(registered).toEqual({ 'claude-code': true, codex: true, cursor: true, 'claude-desktop': true, gemini: true });

    const afterFirst = snapshot(home.home);
    const second = installSh(home, ['--yes', `--source=${ROOT}`]);
    expect(second.code, second.out).toBe(0);
    expect(second.out).toMatch(/already installed/);
    expect(snapshot(home.home)).toEqual(afterFirst);
    expect(calls(home, 'claude').filter((argv) => argv[1] === 'add')).toHaveLength(1);

    const removed = installSh(home, ['uninstall', '--yes']);
    expect(removed.code, removed.out).toBe(0);
    expect(calls(home, 'claude').at(-1)).toEqual(['mcp', 'remove', '-s', 'user', 'agent-async']);
    expect(snapshot(home.home)).toEqual(before);
  }, 15 * 60_000);

  it('registers only the clients named with --clients, and none without a terminal to ask', () => {
    const home = makeHome();
    const chosen = installSh(home, ['--clients=cursor', `--source=${ROOT}`]);
    expect(chosen.code, chosen.out).toBe(0);
    expect(calls(home, 'claude').filter((argv) => argv[1] === 'add')).toEqual([]);
    expect(fs.readFileSync(path.join(home.home, '.cursor/mcp.json'), 'utf8')).toContain('agent-async');
    expect(fs.readFileSync(path.join(home.home, '.gemini/settings.json'), 'utf8')).toBe(GEMINI_SETTINGS);
    const again = installSh(home, [`--source=${ROOT}`]);
    expect(again.code, again.out).toBe(0);
    expect(again.out).toMatch(/not asking \(no terminal\)/);
    expect(calls(home, 'claude').filter((argv) => argv[1] === 'add')).toEqual([]);
    const uninstalled = installSh(home, ['uninstall']);
    expect(uninstalled.code, uninstalled.out).toBe(0);
    expect(fs.readFileSync(path.join(home.home, '.cursor/mcp.json'), 'utf8')).toBe(CURSOR_CONFIG);
    expect(fs.existsSync(path.join(home.home, '.local'))).toBe(false);
  }, 15 * 60_000);

  it('--help shows the usage and nothing of the script; uninstall with nothing installed says so and changes nothing', () => {
    const home = makeHome();
    const help = installSh(home, ['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/^agent-async installer\.\n/);
    expect(help.out).toMatch(/\.\/install\.sh uninstall \[--yes\] \[--purge\]/);
    expect(help.out).not.toMatch(/set -euo|#/);
    const before = snapshot(home.home);
    const nothing = installSh(home, ['uninstall']);
    expect(nothing.code, nothing.out).toBe(0);
    expect(nothing.out.trim()).toBe(`agent-async is not installed in ${path.join(home.home, '.local/share/agent-async-mcp')}; nothing to remove`);
    expect(snapshot(home.home)).toEqual(before);
  });
});
