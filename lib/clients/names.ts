/** The MCP clients add-agent knows, in a module of its own: the CLI names them in its help without loading the client code. */
export const CLIENT_NAMES = ['claude-code', 'codex', 'cursor', 'claude-desktop', 'gemini'] as const;
export type ClientName = (typeof CLIENT_NAMES)[number];
