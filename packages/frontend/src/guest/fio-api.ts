/**
 * What `pvblk bench` (the host-side CLI) uses of the guest's fio: one parser, one set of statistics
 * and one renderer for both, so the bench prints exactly what fio in the guest prints.
 */
export {
  FIO_OPTION_NAMES,
  FIO_VERSION,
  isGlobalFioOption,
  jobDescription,
  outputCount,
  type FioGlobal,
} from './fio-options.ts';
export {
  closestOption,
  fioTakesValue,
  helpAsked,
  versionAsked,
  parseFioOptions,
  isGlobalSection,
  sectionsAsked,
  showCommandLines,
  splitOptions,
  type FioCommandLine,
  type SplitOption,
} from './fio-cmdline.ts';
export {
  checkJob,
  checkJobAgainstDevice,
  DEFAULT_PERCENTILES,
  jobSize,
  rwKinds,
  startOffset,
  subjobNumber,
  syncEngine,
  type FioJob,
  type FioLatencyTarget,
  type LatencyPercentiles,
  type FioRw,
} from './fio-job.ts';
export { blockSizes, rwBlockSize, tdMaxBs, tdMinBs } from './fio-block-size.ts';
export {
  FioUsageError,
  type SaidLine,
  sayLines,
  parseBool,
  parseChoice,
  parseIntOption,
  parseSize,
  parseTime,
} from './fio-parse.ts';
export {
  DirStats,
  JobStats,
  Samples,
  type DeviceCounters,
  type DiskUtil,
  type RawJob,
  type RawSamples,
} from './fio-stats.ts';
export { FIO_IOMEM_MAX, jobIomem } from './fio-iomem.ts';
export { fioJsonText } from './fio-json.ts';
export { logFiles } from './fio-log.ts';
export { JOB_FILE_MAX_BYTES, JobFileError, jobFileOptions } from './fio-jobfile.ts';
export {
  num2str,
  renderJson,
  renderNormal,
  renderTerse,
  reportGroups,
  type FioReport,
  type FioReportJob,
} from './fio-report.ts';
export { jobBanner, setupLines, startBanner } from './fio-setup.ts';
export {
  condensedRunStr,
  etaBare,
  etaLine,
  etaPercentage,
  etaRedraw,
  rateLimit,
  etaToStr,
  fioExitStatus,
  jobErrorLine,
  parseEtaLine,
  startNotes,
  type EtaStatus,
  PVBLK_STACK_OPTIONS,
  deviceJson,
  commandLineFirst,
  GUEST_KEYWORDS,
} from './fio.ts';
