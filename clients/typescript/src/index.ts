export { Contract, InvalidPayload, defaultSchemasDir, type Json } from './contract';
export { MOUNTED_CONTENT, MOUNT_TASK, Refused, XINGGUANG_TASK, XingtuClient, type StartOptions } from './client';
export type * from './types';
