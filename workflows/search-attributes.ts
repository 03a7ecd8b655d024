import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/** Custom search attributes registered on the namespace (temporal.dev.yaml); every run sets the ones it knows. */
export const GuestIdKey = defineSearchAttributeKey('GuestId', SearchAttributeType.KEYWORD);
/** The guest's name, so an operator finds its runs by the name they know. */
export const GuestNameKey = defineSearchAttributeKey('GuestName', SearchAttributeType.KEYWORD);
export const SourceHostKey = defineSearchAttributeKey('SourceHost', SearchAttributeType.KEYWORD);
export const DestinationHostKey = defineSearchAttributeKey('DestinationHost', SearchAttributeType.KEYWORD);
export const MigrationKindKey = defineSearchAttributeKey('MigrationKind', SearchAttributeType.KEYWORD);
export const MigrationTriggerKey = defineSearchAttributeKey('MigrationTrigger', SearchAttributeType.KEYWORD);
