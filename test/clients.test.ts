import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'smol-toml';
import { addClient, allowTools, clientStatus, disallowTools, removeClient } from '../lib/clients/clients.js';
import { addMember, removeMember } from '../lib/clients/json-edit.js';
import { addServer, removeServer } from '../lib/clients/toml-edit.js';
import { uninstall } from '../lib/install/uninstall.js';

/** Merging into real-looking client configs: nothing else changes, add+remove gives the same bytes. */

const temps: string[] = [];
afterAll(() => {
  for (const dir of temps) fs.rmSync(dir, { recursive: true, force: true });
});

function tempHome(): { home: string; env: NodeJS.ProcessEnv; spool: string } {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'aa-clients-'));
  temps.push(home);
  return { home, env: { HOME: home, PATH: '/usr/bin:/bin' }, spool: path.join(home, '.agent-async') };
}

const server = { command: '/usr/bin/node', args: ['/opt/agent-async/bin/agent-async.js', 'serve'] };

const JSON_CASES: Record<string, string> = {
  'comments and other servers': `{
  // my MCP servers
  "mcpServers": {
    "github": { "command": "npx", "args": ["-y", "@modelcontextprotocol/server-github"] }, /* inline */
    "postgres": {
      "command": "docker",
      "args": ["run", "-i", "mcp/postgres"]
    }
  },
  "theme": "dark"
}
`,
  'tabs and no mcpServers': '{\n\t"editor.fontSize": 14,\n\t"files.autoSave": "afterDelay"\n}\n',
  'empty object': '{}',
  'empty mcpServers on one line': '{"mcpServers":{},"other":true}',
  'trailing comma': '{\n  "mcpServers": {\n    "a": {"command": "a"},\n  },\n}\n',
};

describe('JSON configs (cursor, claude desktop, gemini)', () => {
  for (const [name, original] of Object.entries(JSON_CASES)) {
    it(`${name}: adds our server last, keeps everything else, and removes it back to the same bytes`, () => {
      const { text: added } = addMember(original, 'x.json', ['mcpServers'], 'agent-async', server);
      const parseJsonc = (text: string): any => JSON.parse(text.replace(/\/\/.*$/gm, '').replace(/\/\*.*?\*\//g, '').replace(/,(\s*[}\]])/g, '$1'));
      const parsedAdded = parseJsonc(added);
      const parsedOriginal = parseJsonc(original);
      expect(parsedAdded).toEqual({ ...parsedOriginal, mcpServers: { ...parsedOriginal.mcpServers, 'agent-async': server } });
      expect(Object.keys(parsedAdded.mcpServers).at(-1)).toBe('agent-async');
      // every other line of the original is still there, in order
      let cursor = 0;
      const lines = original.includes('\n') ? original.split('\n') : [];
      for (const line of lines.filter((l) => l.trim() !== '' && !/^\s*[{}],?\s*$/.test(l))) {
        const found = added.indexOf(line.trimEnd().replace(/,$/, ''), cursor);
        expect(found, `kept: ${line}`).toBeGreaterThanOrEqual(0);
        cursor = found;
      }
      let removed = removeMember(added, 'x.json', ['mcpServers', 'agent-async']);
      if (!original.includes('mcpServers')) removed = removeMember(removed, 'x.json', ['mcpServers']);
      if (name === 'empty object' || name === 'empty mcpServers on one line') {
        expect(JSON.parse(removed)).toEqual(JSON.parse(original));
      } else {
        expect(removed).toBe(original);
      }
    });
  }

  it("removing our entry between the user's keeps their comments and layout", () => {
    const withOursBetween = `{
  "mcpServers": {
    "a": { "command": "a" }, // keep me
    // about agent-async, written by the user
    "agent-async": { "command": "node" },
    /* about b */
    "b": { "command": "b" }
  }
}
`;
    expect(removeMember(withOursBetween, 'x.json', ['mcpServers', 'agent-async'])).toBe(`{
  "mcpServers": {
    "a": { "command": "a" }, // keep me
    // about agent-async, written by the user
    /* about b */
    "b": { "command": "b" }
  }
}
`);
    const withOursLast = '{\n  "mcpServers": {\n    "a": 1, // keep me\n    "agent-async": { "command": "node" }\n  }\n}\n';
    expect(removeMember(withOursLast, 'x.json', ['mcpServers', 'agent-async'])).toBe('{\n  "mcpServers": {\n    "a": 1 // keep me\n  }\n}\n');
    const withOursFirst = '{\n  "mcpServers": {\n    "agent-async": { "command": "node" },\n    // about b\n    "b": { "command": "b" }\n  }\n}\n';
    expect(removeMember(withOursFirst, 'x.json', ['mcpServers', 'agent-async'])).toBe('{\n  "mcpServers": {\n    // about b\n    "b": { "command": "b" }\n  }\n}\n');
    expect(removeMember('{"mcpServers":{"agent-async":{},"b":1}}', 'x.json', ['mcpServers', 'agent-async'])).toBe('{"mcpServers":{"b":1}}');
    expect(removeMember('{"mcpServers":{"a":1,"agent-async":{}}}', 'x.json', ['mcpServers', 'agent-async'])).toBe('{"mcpServers":{"a":1}}');
  });

  it('a malformed file is reported and never rewritten; add-agent then fails with the file named', () => {
    const { home, env, spool } = tempHome();
    const file = path.join(home, '.cursor', 'mcp.json');
    fs.mkdirSync(path.dirname(file));
    const broken = '{ "mcpServers": { "a": { "command": "x" } '; // unclosed
    fs.writeFileSync(file, broken);
    expect(clientStatus('cursor', env)).toMatchObject({ detected: true, registered: false, note: expect.stringMatching(/mcp\.json: not valid JSON/) });
    expect(() => addClient('cursor', spool, env, server)).toThrow(/mcp\.json: not valid JSON.*left untouched/);
    expect(fs.readFileSync(file, 'utf8')).toBe(broken);
    expect(fs.existsSync(`${file}.agent-async.bak`)).toBe(false);
  });

  it('add-agent and remove-agent through a file: backup kept, original bytes back, a file it created removed again', () => {
    const { home, env, spool } = tempHome();
    const desktop = path.join(home, '.config', 'Claude', 'claude_desktop_config.json');
    fs.mkdirSync(path.dirname(desktop), { recursive: true });
    fs.writeFileSync(desktop, JSON_CASES['comments and other servers']!, { mode: 0o640 });
    expect(addClient('claude-desktop', spool, env, server)).toMatchObject({ changed: true });
    expect(fs.readFileSync(`${desktop}.agent-async.bak`, 'utf8')).toBe(JSON_CASES['comments and other servers']);
    expect(fs.statSync(desktop).mode & 0o777).toBe(0o640);
    expect(addClient('claude-desktop', spool, env, server)).toMatchObject({ changed: false });
    expect(clientStatus('claude-desktop', env).registered).toBe(true);
    removeClient('claude-desktop', spool, env);
    expect(fs.readFileSync(desktop, 'utf8')).toBe(JSON_CASES['comments and other servers']);
    expect(fs.existsSync(`${desktop}.agent-async.bak`)).toBe(false);

    fs.mkdirSync(path.join(home, '.cursor'));
    addClient('cursor', spool, env, server);
    expect(JSON.parse(fs.readFileSync(path.join(home, '.cursor', 'mcp.json'), 'utf8'))).toEqual({ mcpServers: { 'agent-async': server } });
    removeClient('cursor', spool, env);
    expect(fs.readdirSync(path.join(home, '.cursor'))).toEqual([]);
    expect(fs.existsSync(spool)).toBe(false);
  });

  it("a user's edit after ours is kept when ours is taken out", () => {
    const { home, env, spool } = tempHome();
    const file = path.join(home, '.gemini', 'settings.json');
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, '{\n  "theme": "GitHub"\n}\n');
    addClient('gemini', spool, env, server);
    const edited = fs.readFileSync(file, 'utf8').replace('"theme": "GitHub"', '"theme": "Dracula"');
    fs.writeFileSync(file, edited);
    removeClient('gemini', spool, env);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual({ theme: 'Dracula' });
  });

  it('an add after a hand edit, then a remove: the hand edit stays (the old backup is not restored)', () => {
    const { home, env, spool } = tempHome();
    const file = path.join(home, '.cursor', 'mcp.json');
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, '{\n  "mcpServers": {}\n}\n');
    addClient('cursor', spool, env, server);
    fs.writeFileSync(file, addMember(fs.readFileSync(file, 'utf8'), file, ['mcpServers'], 'user-added', { command: 'mine' }).text);
    addClient('cursor', spool, env, { ...server, command: '/usr/local/bin/node' }); // a new node path
    expect(fs.existsSync(`${file}.agent-async.bak`)).toBe(false);
    removeClient('cursor', spool, env);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual({ mcpServers: { 'user-added': { command: 'mine' } } });
  });

  it('a symlinked config (dotfiles) stays a link; the edit lands in its target, mode kept', () => {
    const { home, env, spool } = tempHome();
    const dotfiles = path.join(home, 'dotfiles');
    fs.mkdirSync(dotfiles);
    const target = path.join(dotfiles, 'mcp.json');
    fs.writeFileSync(target, '{"mcpServers":{}}\n', { mode: 0o640 });
    fs.mkdirSync(path.join(home, '.cursor'));
    const link = path.join(home, '.cursor', 'mcp.json');
    fs.symlinkSync(target, link);
    addClient('cursor', spool, env, server);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(JSON.parse(fs.readFileSync(target, 'utf8')).mcpServers['agent-async']).toEqual(server);
    expect(fs.statSync(target).mode & 0o777).toBe(0o640);
    removeClient('cursor', spool, env);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(target, 'utf8')).toBe('{"mcpServers":{}}\n');
  });

  it('--allow-tools: a settings file it created goes again; an item the user had allowed stays', () => {
    const { home, spool, env } = tempHome();
    const settings = path.join(home, '.claude', 'settings.json');
    fs.mkdirSync(path.dirname(settings));
    allowTools(['codex_start'], spool, env);
    expect(JSON.parse(fs.readFileSync(settings, 'utf8')).permissions.allow).toEqual(['mcp__agent-async__codex_start']);
    disallowTools(spool);
    expect(fs.existsSync(settings)).toBe(false);

    fs.writeFileSync(settings, '{"permissions":{"allow":["mcp__agent-async__codex_wait"]}}\n');
    allowTools(['codex_start', 'codex_wait'], spool, env);
    fs.appendFileSync(settings, '\n'); // edited since, so the item-by-item removal runs
    disallowTools(spool);
    expect(JSON.parse(fs.readFileSync(settings, 'utf8')).permissions.allow).toEqual(['mcp__agent-async__codex_wait']);
  });

  it('--allow-tools adds the permissions to Claude Code settings and takes exactly them back', () => {
    const { home, spool, env } = tempHome();
    const settings = path.join(home, '.claude', 'settings.json');
    fs.mkdirSync(path.dirname(settings));
    const original = '{\n  "permissions": {\n    "allow": [\n      "Bash(npm test)"\n    ],\n    "deny": []\n  },\n  "model": "sonnet"\n}\n';
    fs.writeFileSync(settings, original);
    allowTools(['codex_start', 'codex_wait'], spool, env);
    expect(JSON.parse(fs.readFileSync(settings, 'utf8')).permissions.allow).toEqual(['Bash(npm test)', 'mcp__agent-async__codex_start', 'mcp__agent-async__codex_wait']);
    disallowTools(spool);
    expect(fs.readFileSync(settings, 'utf8')).toBe(original);
  });
});

const CODEX_TOML = `# Codex settings
model = "gpt-6.1-sol"   # the default
approval_policy = "on-request"

[mcp_servers.github]
command = "npx"
args = ["-y", "@modelcontextprotocol/server-github"]
env = { GITHUB_TOKEN = "x" }

# my profiles
[profiles.fast]
model   =   "gpt-6.1-mini"
`;

describe("Codex's config.toml", () => {
  it('appends our table with a real TOML check, keeps comments and formatting, and removes it back to the same bytes', () => {
    const added = addServer(CODEX_TOML, 'config.toml', 'agent-async', server.command, server.args);
    expect(added.startsWith(CODEX_TOML)).toBe(true);
    const parsed = parse(added) as any;
    expect(parsed.mcp_servers['agent-async']).toEqual(server);
    expect(parsed.mcp_servers.github.env).toEqual({ GITHUB_TOKEN: 'x' });
    expect(parsed.profiles.fast.model).toBe('gpt-6.1-mini');
    expect(removeServer(added, 'config.toml', 'agent-async')).toBe(CODEX_TOML);
    expect(removeServer(addServer('', 'config.toml', 'agent-async', 'n', ['a']), 'config.toml', 'agent-async')).toBe('');
  });

  it('refuses a removal that would change other settings, an add into an inline table, and a malformed file', () => {
    const withOurs = addServer(CODEX_TOML, 'config.toml', 'agent-async', server.command, server.args);
    const userSubTable = `${withOurs}[mcp_servers.agent-async.env]\nTOKEN = "kept"\n`;
    expect(() => removeServer(userSubTable, 'config.toml', 'agent-async')).toThrow(/config\.toml: removing \[mcp_servers\.agent-async\] would change other settings/);
    const inline = 'mcp_servers = { github = { command = "npx" } }\n';
    expect(() => addServer(inline, 'config.toml', 'agent-async', 'n', ['a'])).toThrow(/config\.toml: not valid TOML .*left untouched/);
    expect(() => addServer('model = "x\n[broken', 'config.toml', 'agent-async', 'n', ['a'])).toThrow(/config\.toml: not valid TOML/);
  });

  it('is used when the codex CLI is missing but ~/.codex exists', () => {
    const { home, env, spool } = tempHome();
    const file = path.join(home, '.codex', 'config.toml');
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, CODEX_TOML);
    expect(clientStatus('codex', env)).toMatchObject({ detected: true, method: 'file', via: file, registered: false });
    addClient('codex', spool, env, server);
    expect(clientStatus('codex', env).registered).toBe(true);
    removeClient('codex', spool, env);
    expect(fs.readFileSync(file, 'utf8')).toBe(CODEX_TOML);
  });
});

describe('uninstall', () => {
  it('one client config broken by hand is reported; the other registrations are still taken out', async () => {
    const { home, spool } = tempHome();
    const env = { HOME: home, PATH: path.join(home, 'no-such-bin') }; // no client CLIs, no crontab
    for (const dir of ['.cursor', '.gemini']) fs.mkdirSync(path.join(home, dir));
    fs.writeFileSync(path.join(home, '.gemini', 'settings.json'), '{\n  "theme": "GitHub"\n}\n');
    addClient('cursor', spool, env, server);
    addClient('gemini', spool, env, server);
    fs.writeFileSync(path.join(home, '.cursor', 'mcp.json'), '{ "mcpServers": { broken');
    const report = await uninstall({ home: spool, purge: false, env, root: fs.mkdtempSync(path.join(home, 'root-')) });
    expect(report.kept.join('\n')).toMatch(/cursor: .*mcp\.json: not valid JSON/);
    expect(report.steps).toContain('gemini: unregistered');
    expect(fs.readFileSync(path.join(home, '.gemini', 'settings.json'), 'utf8')).toBe('{\n  "theme": "GitHub"\n}\n');
  });
});
