/** Registers every Preflight task; hardhat.config.ts imports this file. */
import "./admin";
import "./deploy";
import "./escrow";
import "./grants";
import "./requests";
import "./vouchers";
