import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { parse } from 'smol-toml';
import { addClient, allowTools, clientStatus, disallowTools, removeClient, serverCommand } from '../lib/clients/clients.js';
import { addMember, removeMember } from '../lib/clients/json-edit.js';
import { allowedTools, parseLevel } from '../lib/clients/permissions.js';
import { addServer, removeServer } from '../lib/clients/toml-edit.js';
import { uninstall } from '../lib/install/uninstall.js';
import { allTools } from '../lib/mcp/tools.js';
import { call, connect, errorText, ok, stubbedSpool } from './helpers/mcp.js';
import { ROOT, cleanupSpools, cli, waitJob } from './helpers/spool.js';

/** Merging into real-looking client configs: nothing else changes, add+remove gives the same bytes. */

const temps: string[] = [];
afterAll(() => {
  for (const dir of temps) fs.rmSync(dir, { recursive: true, force: true });
  cleanupSpools();
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
    expect(() => addClient('cursor', spool, env, { server })).toThrow(/mcp\.json: not valid JSON.*left untouched/);
    expect(fs.readFileSync(file, 'utf8')).toBe(broken);
    expect(fs.existsSync(`${file}.agent-async.bak`)).toBe(false);
  });

  it('add-agent and remove-agent through a file: backup kept, original bytes back, a file it created removed again', () => {
    const { home, env, spool } = tempHome();
    const desktop = path.join(home, '.config', 'Claude', 'claude_desktop_config.json');
    fs.mkdirSync(path.dirname(desktop), { recursive: true });
    fs.writeFileSync(desktop, JSON_CASES['comments and other servers']!, { mode: 0o640 });
    expect(addClient('claude-desktop', spool, env, { server })).toMatchObject({ changed: true });
    expect(fs.readFileSync(`${desktop}.agent-async.bak`, 'utf8')).toBe(JSON_CASES['comments and other servers']);
    expect(fs.statSync(desktop).mode & 0o777).toBe(0o640);
    expect(addClient('claude-desktop', spool, env, { server })).toMatchObject({ changed: false });
    expect(clientStatus('claude-desktop', env).registered).toBe(true);
    removeClient('claude-desktop', spool, env);
    expect(fs.readFileSync(desktop, 'utf8')).toBe(JSON_CASES['comments and other servers']);
    expect(fs.existsSync(`${desktop}.agent-async.bak`)).toBe(false);

    fs.mkdirSync(path.join(home, '.cursor'));
    addClient('cursor', spool, env, { server });
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
    addClient('gemini', spool, env, { server });
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
    addClient('cursor', spool, env, { server });
    fs.writeFileSync(file, addMember(fs.readFileSync(file, 'utf8'), file, ['mcpServers'], 'user-added', { command: 'mine' }).text);
    addClient('cursor', spool, env, { server: { ...server, command: '/usr/local/bin/node' } }); // a new node path
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
    addClient('cursor', spool, env, { server });
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
    const added = addServer(CODEX_TOML, 'config.toml', 'agent-async', server);
    expect(added.startsWith(CODEX_TOML)).toBe(true);
    const parsed = parse(added) as any;
    expect(parsed.mcp_servers['agent-async']).toEqual(server);
    expect(parsed.mcp_servers.github.env).toEqual({ GITHUB_TOKEN: 'x' });
    expect(parsed.profiles.fast.model).toBe('gpt-6.1-mini');
    expect(removeServer(added, 'config.toml', 'agent-async')).toBe(CODEX_TOML);
    expect(removeServer(addServer('', 'config.toml', 'agent-async', { command: 'n', args: ['a'] }), 'config.toml', 'agent-async')).toBe('');
  });

  it('refuses a removal that would change other settings, an add into an inline table, and a malformed file', () => {
    const withOurs = addServer(CODEX_TOML, 'config.toml', 'agent-async', server);
    const userSubTable = `${withOurs}[mcp_servers.agent-async.env]\nTOKEN = "kept"\n`;
    expect(() => removeServer(userSubTable, 'config.toml', 'agent-async')).toThrow(/config\.toml: removing \[mcp_servers\.agent-async\] would change other settings/);
    const inline = 'mcp_servers = { github = { command = "npx" } }\n';
    expect(() => addServer(inline, 'config.toml', 'agent-async', { command: 'n', args: ['a'] })).toThrow(/config\.toml: not valid TOML .*left untouched/);
    expect(() => addServer('model = "x\n[broken', 'config.toml', 'agent-async', { command: 'n', args: ['a'] })).toThrow(/config\.toml: not valid TOML/);
  });

  it('is used when the codex CLI is missing but ~/.codex exists', () => {
    const { home, env, spool } = tempHome();
    const file = path.join(home, '.codex', 'config.toml');
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, CODEX_TOML);
    expect(clientStatus('codex', env)).toMatchObject({ detected: true, method: 'file', via: file, registered: false });
    addClient('codex', spool, env, { server });
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
    addClient('cursor', spool, env, { server });
    addClient('gemini', spool, env, { server });
    fs.writeFileSync(path.join(home, '.cursor', 'mcp.json'), '{ "mcpServers": { broken');
    const report = await uninstall({ home: spool, purge: false, env, root: fs.mkdtempSync(path.join(home, 'root-')) });
    expect(report.kept.join('\n')).toMatch(/cursor: .*mcp\.json: not valid JSON/);
    expect(report.steps).toContain('gemini: unregistered');
    expect(fs.readFileSync(path.join(home, '.gemini', 'settings.json'), 'utf8')).toBe('{\n  "theme": "GitHub"\n}\n');
  });
});

// ── what each level pre-approves, in every client ────────────────────────────────────────

const TOOLS = allTools().map((tool) => ({ name: tool.name, readOnly: tool.annotations.readOnlyHint }));
const READ_TOOLS = ['codex_wait', 'cursor_wait', 'gemini_wait', 'claude_wait', 'job_wait', 'codex_await_any', 'job_await_any', 'job_list', 'queue_status', 'job_output', 'job_diff'];
const AGENT_TOOLS = [...READ_TOOLS, 'codex_start', 'claude_start', 'gemini_start', 'cursor_start', 'gemini_confluence_start', 'gemini_pr_start', 'job_continue', 'job_cancel', 'agent_notify_done', 'job_apply', 'job_discard'];
const sorted = (names: string[]): string[] => [...names].sort();

describe('tool permission levels', () => {
  it('read: the read-only tools; agents: also the agent workers; only exec adds agent_start, and a tool nobody classified', () => {
    expect(allowedTools('none', TOOLS)).toEqual([]);
    expect(sorted(allowedTools('read', TOOLS))).toEqual(sorted(READ_TOOLS));
    expect(sorted(allowedTools('agents', TOOLS))).toEqual(sorted(AGENT_TOOLS));
    expect(allowedTools('exec', TOOLS)).toEqual(TOOLS.map((tool) => tool.name));
    expect(TOOLS.map((tool) => tool.name).filter((name) => !AGENT_TOOLS.includes(name))).toEqual(['agent_start', 'job_retry']);
    const withNew = [...TOOLS, { name: 'shiny_new_tool', readOnly: false }];
    expect(allowedTools('agents', withNew)).not.toContain('shiny_new_tool');
    expect(allowedTools('exec', withNew)).toContain('shiny_new_tool');
  });

  it('--allow-tools takes none, read or agents (alone: agents); exec tools only through --allow-exec-tools', () => {
    expect(parseLevel(undefined, undefined, 'none')).toBe('none');
    expect(parseLevel('', undefined, 'none')).toBe('agents');
    expect(parseLevel('read', undefined, 'agents')).toBe('read');
    expect(parseLevel(undefined, true, 'none')).toBe('exec');
    expect(() => parseLevel('exec', undefined, 'none')).toThrow(/allow-tools: "exec" is not a level; allowed: none, read, agents \(tools that run any command are allowed only with --allow-exec-tools\)/);
    expect(() => parseLevel('write', undefined, 'none')).toThrow(/allow-tools: "write" is not a level; allowed: none, read, agents$/);
    expect(() => parseLevel('read', true, 'none')).toThrow(/allow-tools: "read" contradicts --allow-exec-tools/);
    const { home, env, spool } = tempHome();
    fs.mkdirSync(path.join(home, '.cursor'));
    expect(() => addClient('cursor', spool, env, { server, level: 'agents', tools: TOOLS })).toThrow(/allow-tools: cursor has no setting agent-async can write to pre-approve tools/);
  });

  it('the server is registered with --home when the spool is not the default one', () => {
    const env = { HOME: '/home/someone', PATH: '/usr/bin:/bin' };
    expect(serverCommand(env, '/home/someone/.agent-async').args.slice(1)).toEqual(['serve']);
    expect(serverCommand(env, '/data/spool').args.slice(1)).toEqual(['serve', '--home', '/data/spool']);
  });
});

describe('add-agent codex: what `codex exec` needs to call the tools', () => {
  const entry = (file: string): any => (parse(fs.readFileSync(file, 'utf8')) as any).mcp_servers['agent-async'];
  const approved = (table: any): string[] => sorted(Object.keys(table.tools ?? {}).filter((name) => table.tools[name].approval_mode === 'approve'));

  it('required, a tool timeout above the longest wait, and per-tool approvals by level, in one table the user\'s file keeps around', () => {
    const { home, env, spool } = tempHome();
    const file = path.join(home, '.codex', 'config.toml');
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, CODEX_TOML);
    const first = addClient('codex', spool, env, { server, tools: TOOLS });
    expect(first.notes?.join('\n')).toMatch(/22 tools pre-approved .*full-auto is refused/);
    const text = fs.readFileSync(file, 'utf8');
    expect(text.startsWith(CODEX_TOML)).toBe(true);
    expect(entry(file)).toMatchObject({ ...server, required: true, startup_timeout_sec: 30, tool_timeout_sec: 120, env: { AGENT_ASYNC_MCP_MAX_POLICY: 'auto-edit' } });
    expect(approved(entry(file))).toEqual(sorted(AGENT_TOOLS));

    addClient('codex', spool, env, { server, tools: TOOLS, level: 'exec', waitMaxSeconds: 300 });
    expect(approved(entry(file))).toEqual(sorted(TOOLS.map((tool) => tool.name)));
    expect(entry(file).env).toBeUndefined();
    expect(entry(file).tool_timeout_sec).toBe(360);
    expect(fs.readFileSync(file, 'utf8').match(/\[mcp_servers\.agent-async\]/g)).toHaveLength(1);
    // without a flag the recorded level stays
    expect(addClient('codex', spool, env, { server, tools: TOOLS, waitMaxSeconds: 300 })).toMatchObject({ changed: false });
    addClient('codex', spool, env, { server, tools: TOOLS, level: 'none' });
    expect(entry(file).tools).toBeUndefined();
    removeClient('codex', spool, env);
    expect(fs.readFileSync(file, 'utf8')).toBe(CODEX_TOML);
  });

  it('a registration made by `codex mcp add` (an older agent-async) is replaced, and taken out on removal', () => {
    const { home, env, spool } = tempHome();
    const file = path.join(home, '.codex', 'config.toml');
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, `${CODEX_TOML}\n[mcp_servers.agent-async]\ncommand = "/old/node"\nargs = ["/old/agent-async.js", "serve"]\n`);
    addClient('codex', spool, env, { server, tools: TOOLS });
    expect(entry(file)).toMatchObject({ ...server, required: true });
    removeClient('codex', spool, env);
    expect(parse(fs.readFileSync(file, 'utf8'))).toEqual(parse(CODEX_TOML));
  });
});

const GEMINI_SETTINGS = '{\n  "theme": "GitHub",\n  "mcpServers": {}\n}\n';

describe('add-agent gemini: trust covers every tool offered', () => {
  it('none: untrusted, and says what is needed; agents: trusted, only the allowed tools offered, full-auto capped; exec: trusted, all', () => {
    const { home, env, spool } = tempHome();
    const file = path.join(home, '.gemini', 'settings.json');
    fs.mkdirSync(path.dirname(file));
    fs.writeFileSync(file, GEMINI_SETTINGS);
    const entry = (): any => JSON.parse(fs.readFileSync(file, 'utf8')).mcpServers['agent-async'];
    const plain = addClient('gemini', spool, env, { server, tools: TOOLS });
    expect(entry()).toEqual(server);
    expect(plain.notes?.join('\n')).toMatch(/`gemini -p` offers the tools of an untrusted server to the model only with `--approval-mode yolo`; `--allow-tools` trusts the server/);
    addClient('gemini', spool, env, { server, tools: TOOLS, level: 'agents' });
    expect(entry()).toEqual({ ...server, env: { AGENT_ASYNC_MCP_MAX_POLICY: 'auto-edit' }, trust: true, includeTools: allowedTools('agents', TOOLS) });
    addClient('gemini', spool, env, { server, tools: TOOLS, level: 'exec' });
    expect(entry()).toEqual({ ...server, trust: true });
    removeClient('gemini', spool, env);
    expect(fs.readFileSync(file, 'utf8')).toBe(GEMINI_SETTINGS);
  });
});

describe('add-agent claude-code: permissions.allow holds exactly the level', () => {
  function claudeHome(configDir?: string) {
    const { home, spool } = tempHome();
    const bin = path.join(home, 'bin');
    const records = path.join(home, 'records');
    fs.mkdirSync(bin);
    fs.mkdirSync(records);
    fs.symlinkSync(path.join(ROOT, 'test/stubs/client-cli-stub.mjs'), path.join(bin, 'claude'));
    const env: NodeJS.ProcessEnv = { HOME: home, PATH: `${bin}:${path.dirname(process.execPath)}:/usr/bin:/bin`, STUB_RECORD_DIR: records, STUB_STATE_DIR: records, ...(configDir ? { CLAUDE_CONFIG_DIR: path.join(home, configDir) } : {}) };
    const calls = (): string[][] => fs.readFileSync(path.join(records, 'claude.log'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
    return { home, spool, env, calls };
  }
  const allowed = (file: string): string[] => JSON.parse(fs.readFileSync(file, 'utf8')).permissions.allow;
  const ours = (names: string[]): string[] => names.map((name) => `mcp__agent-async__${name}`);

  it('agents, then read, then exec, then none; the ceiling goes with the registration; a user\'s own rule stays', () => {
    const { home, spool, env, calls } = claudeHome();
    const settings = path.join(home, '.claude', 'settings.json');
    fs.mkdirSync(path.dirname(settings));
    const original = '{\n  "permissions": {\n    "allow": ["Bash(npm test)", "mcp__agent-async__job_list"]\n  }\n}\n';
    fs.writeFileSync(settings, original);

    addClient('claude-code', spool, env, { server, tools: TOOLS, level: 'agents' });
    expect(calls().filter((argv) => argv[1] === 'add').at(-1)).toEqual(['mcp', 'add', '-s', 'user', 'agent-async', '-e', 'AGENT_ASYNC_MCP_MAX_POLICY=auto-edit', '--', server.command, ...server.args]);
    expect(sorted(allowed(settings))).toEqual(sorted(['Bash(npm test)', ...ours(AGENT_TOOLS)]));

    addClient('claude-code', spool, env, { server, tools: TOOLS, level: 'read' });
    expect(calls().filter((argv) => argv[1] === 'add').at(-1)).toEqual(['mcp', 'add', '-s', 'user', 'agent-async', '--', server.command, ...server.args]);
    expect(sorted(allowed(settings))).toEqual(sorted(['Bash(npm test)', ...ours(READ_TOOLS)]));

    addClient('claude-code', spool, env, { server, tools: TOOLS, level: 'exec' });
    expect(sorted(allowed(settings))).toEqual(sorted(['Bash(npm test)', ...ours(TOOLS.map((tool) => tool.name))]));

    addClient('claude-code', spool, env, { server, tools: TOOLS, level: 'none' });
    expect(allowed(settings)).toEqual(['Bash(npm test)', 'mcp__agent-async__job_list']);
    removeClient('claude-code', spool, env);
    expect(calls().at(-1)).toEqual(['mcp', 'remove', '-s', 'user', 'agent-async']);
    expect(fs.readFileSync(settings, 'utf8')).toBe(original);
  });

  it('CLAUDE_CONFIG_DIR moves the settings; remove-agent takes the permissions back; a low MCP_TOOL_TIMEOUT is pointed out', () => {
    const { home, spool, env } = claudeHome('claude-config');
    const added = addClient('claude-code', spool, { ...env, MCP_TOOL_TIMEOUT: '20000' }, { server, tools: TOOLS, level: 'agents' });
    const settings = path.join(home, 'claude-config', 'settings.json');
    expect(allowed(settings)).toEqual(ours(allowedTools('agents', TOOLS)));
    expect(added.notes?.join('\n')).toMatch(/MCP_TOOL_TIMEOUT=20000 \(the environment\) cuts off every tool call .* set it to 65000 or more, or unset it/);
    expect(removeClient('claude-code', spool, env).message).toMatch(/claude-code: unregistered; tool permissions removed from .*claude-config\/settings\.json/);
    expect(fs.existsSync(settings)).toBe(false);
  });
});

describe('mcp_max_policy: a registration with the start tools pre-approved refuses full-auto', () => {
  it('refuses full-auto asked for or inherited, in start and continue; lower policies and exec pass', async () => {
    const spool = stubbedSpool({ default_policy: 'full-auto' });
    const parent = cli(spool, ['start', 'codex', '--policy', 'full-auto', 'first turn']); // the CLI has no ceiling
    expect(parent.code, parent.stderr).toBe(0);
    await waitJob(spool, parent.stdout.trim());
    spool.env.AGENT_ASYNC_MCP_MAX_POLICY = 'auto-edit';
    const mcp = await connect(spool);
    try {
      expect(errorText(await call(mcp, 'codex_start', { prompt: 'p', cwd: spool.work, approval_policy: 'full-auto' })))
        .toMatch(/^approval_policy: full-auto is above this server's mcp_max_policy \(auto-edit\); allowed: suggest, auto-edit\. .*--allow-exec-tools/);
      expect(errorText(await call(mcp, 'gemini_start', { prompt: 'p', cwd: spool.work }))).toMatch(/^approval_policy: full-auto \(the default\) is above/);
      expect(errorText(await call(mcp, 'job_continue', { job_id: parent.stdout.trim(), prompt: 'again' }))).toMatch(/^approval_policy: full-auto \(the default\) is above/);
      expect(await ok(mcp, 'codex_start', { prompt: 'p', cwd: spool.work, approval_policy: 'auto-edit' })).toMatchObject({ status: 'pending' });
      expect(await ok(mcp, 'job_continue', { job_id: parent.stdout.trim(), prompt: 'again', approval_policy: 'suggest' })).toMatchObject({ agent: 'codex' });
      expect(await ok(mcp, 'agent_start', { agent: 'exec', argv: ['true'], cwd: spool.work })).toMatchObject({ agent: 'exec' });
    } finally {
      await mcp.close();
    }
  });
});
