export { Contract, InvalidPayload, defaultSchemasDir } from './contract';
export { MOUNTED_CONTENT, MOUNT_TASK, Refused, XingtuClient } from './client';
export type * from './types';
