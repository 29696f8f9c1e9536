import { describe, expect, it } from 'vitest';
import { parseInput, jobRef } from '../lib/inputs.js';
import { JOB_ID_LENGTH, isJobId, jobIdTime, newJobId } from '../lib/spool/ids.js';

const parseJobId = (value: unknown): string => parseInput(jobRef, { job_id: value }).job_id;

describe('job ids', () => {
  it('are unique, URL-safe and sort by creation time', () => {
    const ids = Array.from({ length: 5000 }, () => newJobId());
    expect(new Set(ids).size).toBe(ids.length);
    expect([...ids].sort()).toEqual(ids);
    for (const id of ids.slice(0, 50)) {
      expect(id).toMatch(/^[0-9a-z]+$/);
      expect(id).toHaveLength(JOB_ID_LENGTH);
    }
    expect(Math.abs(jobIdTime(ids[0]!).getTime() - Date.now())).toBeLessThan(5000);
  });

  it('carry enough randomness that two made in the same instant differ in their random part', () => {
    const a = newJobId();
    const b = newJobId();
    expect(a.slice(11)).not.toBe(b.slice(11));
  });

  it.each([
    ['../x', /not a job id/],
    ['/', /not a job id/],
    ['', /is required/],
    ['a'.repeat(500), /500 chars.*not a job id/],
    ['0HOFW9L67TY3EKXYQXY0XN1', /not a job id/],
    ['0hofw9l67ty3ekxyqxy0xn1/../../etc', /not a job id/],
  ])('rejects %j from outside with a clear error', (bad, message) => {
    expect(isJobId(bad)).toBe(false);
    expect(() => parseJobId(bad)).toThrow(message);
    expect(() => parseJobId(bad)).toThrow(/job_id/);
  });

  it('rejects values that are not strings', () => {
    expect(() => parseJobId(42)).toThrow(/job_id: Invalid input: expected string, received number/);
    expect(() => parseJobId(undefined)).toThrow(/job_id: is required \(string\)/);
  });
});
